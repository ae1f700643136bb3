// The sparse Merkle map headers commit batch states with (`trace_root`;
// client/src/smt.rs): EMPTY is 32 zero bytes, a leaf SHA-256(0x00 ‖ key ‖ value), an
// internal node SHA-256(0x01 ‖ left ‖ right), a lone key's leaf as high as it goes.

import { sha256 } from "@noble/hashes/sha2.js";
import { concat, equal, fail, toHex } from "./bytes.js";

export interface MapProof {
  siblings: Uint8Array[];
  /** The leaf that ends the path (the key's own or another's), or none. */
  leaf: [Uint8Array, Uint8Array] | null;
}

const DEPTH_MAX = 256;

function bit(key: Uint8Array, i: number): boolean {
  return (key[i >> 3]! & (0x80 >> (i & 7))) !== 0;
}

function samePrefix(a: Uint8Array, b: Uint8Array, bits: number): boolean {
  for (let i = 0; i < bits; i++) if (bit(a, i) !== bit(b, i)) return false;
  return true;
}

/** That the map with `root` maps `key` to `value`. */
export function verifyMapProof(p: MapProof, root: Uint8Array, key: Uint8Array, value: Uint8Array): void {
  const entry = mapEntry(p, root, key);
  if (!entry) fail("the map holds no entry for the key");
  if (!equal(entry, value)) fail(`the entry's value is ${toHex(entry)}, not ${toHex(value)}`);
}

/** That the map with `root` holds nothing under `key`. */
export function verifyMapAbsent(p: MapProof, root: Uint8Array, key: Uint8Array): void {
  const entry = mapEntry(p, root, key);
  if (entry) fail(`the entry's value is ${toHex(entry)}, not ${toHex(new Uint8Array(32))}`);
}

/** The value the proof shows for `key` (null: absent), once it leads to `root`. */
function mapEntry(p: MapProof, root: Uint8Array, key: Uint8Array): Uint8Array | null {
  if (p.siblings.length > DEPTH_MAX) fail(`path of ${p.siblings.length} siblings is longer than the key`);
  let h: Uint8Array = new Uint8Array(32);
  if (p.leaf) {
    const [k, v] = p.leaf;
    if (!samePrefix(k, key, p.siblings.length)) fail("the path ends at a leaf whose key does not share the path's bits");
    h = sha256(concat(new Uint8Array([0]), k, v));
  }
  for (let d = p.siblings.length - 1; d >= 0; d--) {
    const s = p.siblings[d]!;
    h = sha256(bit(key, d) ? concat(new Uint8Array([1]), s, h) : concat(new Uint8Array([1]), h, s));
  }
  if (!equal(h, root)) fail(`the path leads to root ${toHex(h)}, not ${toHex(root)}`);
  return p.leaf && equal(p.leaf[0], key) ? p.leaf[1] : null;
}
