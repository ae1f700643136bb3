// Ed25519 by the ledger's rule, ZIP-215 (client/src/crypto.rs): any encoding of a curve
// point for A and R, S below L, and the cofactored equation. @noble/curves implements
// exactly this with `zip215: true`; the speccheck vectors hold the two to the same cases.

import { ed25519 } from "@noble/curves/ed25519.js";
import { concat, text } from "./bytes.js";

export type SigningDomain = "record" | "precommit" | "key-possession";

const DOMAIN_TAGS: Record<SigningDomain, string> = {
  record: "xinlian/record/v1",
  precommit: "xinlian/precommit/v1",
  "key-possession": "xinlian/key-possession/v1",
};

export function zip215Verify(key: Uint8Array, signature: Uint8Array, message: Uint8Array): boolean {
  if (key.length !== 32 || signature.length !== 64) return false;
  try {
    return ed25519.verify(signature, message, key, { zip215: true });
  } catch {
    return false;
  }
}

/** Whether `signature` by `key` holds over `body` under the domain's tag. */
export function verifyIn(domain: SigningDomain, key: Uint8Array, body: Uint8Array, signature: Uint8Array): boolean {
  return zip215Verify(key, signature, concat(text(DOMAIN_TAGS[domain]), new Uint8Array([0]), body));
}
