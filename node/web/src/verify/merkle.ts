// RFC 9162 Merkle trees: leaf and node hashes, inclusion and consistency proofs
// (client/src/merkle.rs). Indices are u64, so positions are BigInt.

import { sha256 } from "@noble/hashes/sha2.js";
import { concat, equal, fail, toHex } from "./bytes.js";

export function leafHash(entry: Uint8Array): Uint8Array {
  return sha256(concat(new Uint8Array([0]), entry));
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256(concat(new Uint8Array([1]), left, right));
}

/** RFC 9162 §2.1.3.2: the root `proof` leads `leaf` at `index` to in a tree of `size`. */
export function verifyInclusion(
  leaf: Uint8Array,
  index: bigint,
  size: bigint,
  proof: Uint8Array[],
  root: Uint8Array,
): void {
  if (index >= size) fail(`leaf index ${index} is not below tree size ${size}`);
  let [fn, sn, r] = [index, size - 1n, leaf];
  for (const p of proof) {
    if (sn === 0n) fail("proof has the wrong number of hashes for this index and size");
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) fail("proof has the wrong number of hashes for this index and size");
  if (!equal(r, root)) fail(`proof leads to root ${toHex(r)}, expected ${toHex(root)}`);
}

/** RFC 9162 §2.1.4.2: that the tree of `size2` with `root2` extends the one of `size1`. */
export function verifyConsistency(
  size1: bigint,
  size2: bigint,
  root1: Uint8Array,
  root2: Uint8Array,
  proof: Uint8Array[],
): void {
  if (size1 > size2) fail(`older tree size ${size1} exceeds newer size ${size2}`);
  if (size1 === 0n) fail("a consistency proof from an empty tree proves nothing");
  if (size1 === size2) {
    if (proof.length === 0 && equal(root1, root2)) return;
    fail("equal sizes need an empty proof and equal roots");
  }
  if (proof.length === 0) fail("proof has the wrong number of hashes for this index and size");
  const path = (size1 & (size1 - 1n)) === 0n ? [root1, ...proof] : proof;
  let [fn, sn] = [size1 - 1n, size2 - 1n];
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let [fr, sr] = [path[0]!, path[0]!];
  for (const c of path.slice(1)) {
    if (sn === 0n) fail("proof has the wrong number of hashes for this index and size");
    if ((fn & 1n) === 1n || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) fail("proof has the wrong number of hashes for this index and size");
  if (!equal(fr, root1)) fail(`consistency proof does not reproduce the older root ${toHex(root1)}`);
  if (!equal(sr, root2)) fail(`consistency proof does not reproduce the newer root ${toHex(root2)}`);
}
