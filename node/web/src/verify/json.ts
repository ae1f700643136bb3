// Reading JSON answers as the Rust client's serde does: a missing field is refused
// (an `Option` one reads as null), a number must fit its integer type exactly, hex has
// its exact length, and the types marked `deny_unknown_fields` there refuse other keys.

import { fail, fromHex } from "./bytes.js";

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type Obj = { [k: string]: Json };

/** A whole document (a bundle or report file) as JSON, or the reason it is not. */
export function parseDocument(text: string, what: string): Json {
  try {
    return JSON.parse(text) as Json;
  } catch (e) {
    fail(`${what}: not JSON: ${(e as Error).message}`);
  }
}

export function obj(v: Json | undefined, what: string): Obj {
  if (v === null || v === undefined || typeof v !== "object" || Array.isArray(v))
    fail(`${what}: expected an object`);
  return v;
}

export function only(o: Obj, what: string, keys: readonly string[]): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) fail(`${what}: unknown field '${k}'`);
}

export function field(o: Obj, key: string, what: string): Json {
  const v = o[key];
  if (v === undefined) fail(`${what}: missing field '${key}'`);
  return v;
}

export function arr(v: Json | undefined, what: string): Json[] {
  if (!Array.isArray(v)) fail(`${what}: expected an array`);
  return v;
}

export function str(v: Json | undefined, what: string): string {
  if (typeof v !== "string") fail(`${what}: expected a string`);
  return v;
}

export function bool(v: Json | undefined, what: string): boolean {
  if (typeof v !== "boolean") fail(`${what}: expected a boolean`);
  return v;
}

const LIMITS = { u16: 0xffff, u32: 0xffffffff, u64: Number.MAX_SAFE_INTEGER } as const;

/** An unsigned integer of the given width. u64 beyond 2^53 cannot be held exactly by
 * a JS number, and no real chain reaches it: refused as out of range. */
export function uint(v: Json | undefined, what: string, ty: keyof typeof LIMITS): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > LIMITS[ty])
    fail(`${what}: expected a ${ty}`);
  return v;
}

export function int(v: Json | undefined, what: string, bits: 32 | 64): number {
  const max = bits === 32 ? 0x7fffffff : Number.MAX_SAFE_INTEGER;
  if (typeof v !== "number" || !Number.isInteger(v) || v > max || v < -max - 1)
    fail(`${what}: expected an i${bits}`);
  return v;
}

export function hex32(v: Json | undefined, what: string): Uint8Array {
  return fromHex(str(v, what), what, 32);
}

export function hex64(v: Json | undefined, what: string): Uint8Array {
  return fromHex(str(v, what), what, 64);
}
