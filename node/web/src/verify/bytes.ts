// Bytes, hex, and postcard 1.x: the canonical binary form every signed or hashed value
// of the ledger takes (genesis/src/canonical.rs). Varints are LEB128, signed integers
// zigzag, strings and sequences length-prefixed, enums a varint variant index,
// fixed-size byte strings (hashes, keys, signatures) their bytes with no prefix.

import { sha256 } from "@noble/hashes/sha2.js";

export class VerifyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "VerifyError";
  }
}

export function fail(message: string): never {
  throw new VerifyError(message);
}

const HEX = "0123456789abcdef";

export function toHex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += HEX[x >> 4]! + HEX[x & 15]!;
  return s;
}

/** Hex in either case (as the Rust `hex` crate reads it); `len` bytes if given. */
export function fromHex(s: string, what: string, len?: number): Uint8Array {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) fail(`${what}: expected hex`);
  if (len !== undefined && s.length !== 2 * len) fail(`${what}: expected ${2 * len} hex digits`);
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

export function text(s: string): Uint8Array {
  return utf8.encode(s);
}

/** SHA-256 over a domain tag, a zero byte and a canonical encoding. */
export function taggedHash(tag: string, encoding: Uint8Array): Uint8Array {
  return sha256(concat(text(tag), new Uint8Array([0]), encoding));
}

/** Postcard's encoder, for the values a verifier must hash. */
export class Writer {
  private parts: number[] = [];

  varint(n: bigint | number): this {
    let v = BigInt(n);
    if (v < 0n) fail("varint of a negative number");
    for (;;) {
      const b = Number(v & 0x7fn);
      v >>= 7n;
      if (v === 0n) {
        this.parts.push(b);
        return this;
      }
      this.parts.push(b | 0x80);
    }
  }

  /** A signed integer (i32, i64): zigzag, then varint. */
  signed(n: bigint | number): this {
    const v = BigInt(n);
    return this.varint(v < 0n ? -2n * v - 1n : 2n * v);
  }

  bool(b: boolean): this {
    this.parts.push(b ? 1 : 0);
    return this;
  }

  fixed(b: Uint8Array): this {
    for (const x of b) this.parts.push(x);
    return this;
  }

  str(s: string): this {
    const b = text(s);
    return this.varint(b.length).fixed(b);
  }

  option<T>(v: T | null, each: (w: Writer, v: T) => void): this {
    if (v === null) return this.varint(0);
    this.varint(1);
    each(this, v);
    return this;
  }

  seq<T>(items: readonly T[], each: (w: Writer, v: T) => void): this {
    this.varint(items.length);
    for (const v of items) each(this, v);
    return this;
  }

  bytes(): Uint8Array {
    return new Uint8Array(this.parts);
  }
}

/** Postcard's decoder: every read names what it read, and refuses what postcard would. */
export class Reader {
  private at = 0;

  constructor(
    private readonly buf: Uint8Array,
    private readonly what: string,
  ) {}

  get offset(): number {
    return this.at;
  }

  get remaining(): number {
    return this.buf.length - this.at;
  }

  private bad(reason: string): never {
    fail(`${this.what}: ${reason} at byte ${this.at}`);
  }

  byte(): number {
    if (this.at >= this.buf.length) this.bad("ends early");
    return this.buf[this.at++]!;
  }

  /** A varint of at most `bits` bits, in its shortest form (canonical encodings only). */
  varint(bits: 16 | 32 | 64): bigint {
    let v = 0n;
    let shift = 0n;
    const maxBytes = Math.ceil(bits / 7);
    for (let i = 0; i < maxBytes; i++) {
      const b = this.byte();
      v |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) {
        if (i > 0 && b === 0) this.bad("over-long varint");
        if (v >> BigInt(bits) !== 0n) this.bad(`varint exceeds ${bits} bits`);
        return v;
      }
      shift += 7n;
    }
    this.bad("varint too long");
  }

  /** A u64 or shorter that a JS number holds exactly. */
  number(bits: 16 | 32 | 64): number {
    const v = this.varint(bits);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.bad("integer beyond 2^53");
    return Number(v);
  }

  fixed(n: number): Uint8Array {
    if (this.remaining < n) this.bad(`needs ${n} bytes`);
    const out = this.buf.slice(this.at, this.at + n);
    this.at += n;
    return out;
  }

  len(): number {
    const n = this.number(64);
    if (n > this.remaining) this.bad(`length ${n} exceeds the bytes left`);
    return n;
  }

  str(): string {
    const b = this.fixed(this.len());
    try {
      return utf8Strict.decode(b);
    } catch {
      this.bad("string is not UTF-8");
    }
  }

  bool(): boolean {
    const b = this.byte();
    if (b > 1) this.bad("bool is neither 0 nor 1");
    return b === 1;
  }

  option<T>(each: (r: Reader) => T): T | null {
    const tag = this.byte();
    if (tag === 0) return null;
    if (tag !== 1) this.bad("option tag is neither 0 nor 1");
    return each(this);
  }

  variant(count: number): number {
    const v = this.number(32);
    if (v >= count) this.bad(`variant ${v} of ${count}`);
    return v;
  }

  seq<T>(each: (r: Reader) => T): T[] {
    const n = this.len(); // each element takes at least one byte
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(each(this));
    return out;
  }
}
