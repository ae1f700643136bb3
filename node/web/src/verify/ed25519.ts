// Ed25519 by the ledger's rule, ZIP-215 (client/src/crypto.rs): any encoding of a curve
// point for A and R, S below L, and the cofactored equation. @noble/curves implements
// exactly this with `zip215: true`; the speccheck vectors hold the two to the same cases.

import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { concat, text, toHex } from "./bytes.js";

export type SigningDomain = "record" | "precommit" | "key-possession";

const DOMAIN_TAGS: Record<SigningDomain, string> = {
  record: "xinlian/record/v1",
  precommit: "xinlian/precommit/v1",
  "key-possession": "xinlian/key-possession/v1",
};

/** Signatures the platform's own Ed25519 (WebCrypto) accepted, by key, signature and
 * message digest. Acceptance there implies acceptance by ZIP-215: WebCrypto's rule
 * (RFC 8032) needs S below L and [S]B − [k]A to encode to exactly the R given, with
 * k over the encodings given — so the cofactorless equation holds, hence the cofactored
 * one, and ZIP-215 reads every encoding RFC 8032 does. What WebCrypto refuses is left
 * to @noble/curves, so the verdict is always ZIP-215's; WebCrypto only makes the
 * common case fast (about 20 times, measured in docs/web.md). */
const accepted = new Set<string>();
const ACCEPTED_MAX = 200_000;

function memoKey(key: Uint8Array, signature: Uint8Array, message: Uint8Array): string {
  return toHex(key) + toHex(signature) + toHex(sha256(message));
}

/** Checks many signatures at once with WebCrypto, where the platform has Ed25519, and
 * remembers those it accepts; later single checks of them cost a look-up. */
export async function preverify(items: { domain: SigningDomain; key: Uint8Array; body: Uint8Array; signature: Uint8Array }[]): Promise<void> {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) return;
  if (accepted.size + items.length > ACCEPTED_MAX) accepted.clear();
  await Promise.all(
    items.map(async (i) => {
      const message = concat(text(DOMAIN_TAGS[i.domain]), new Uint8Array([0]), i.body);
      try {
        const k = await subtle.importKey("raw", new Uint8Array(i.key), { name: "Ed25519" }, false, ["verify"]);
        if (await subtle.verify({ name: "Ed25519" }, k, new Uint8Array(i.signature), new Uint8Array(message)))
          accepted.add(memoKey(i.key, i.signature, message));
      } catch {
        // no Ed25519 here, or a key it will not import: the single check decides
      }
    }),
  );
}

export function zip215Verify(key: Uint8Array, signature: Uint8Array, message: Uint8Array): boolean {
  if (key.length !== 32 || signature.length !== 64) return false;
  if (accepted.size > 0 && accepted.has(memoKey(key, signature, message))) return true;
  try {
    return ed25519.verify(signature, message, key, { zip215: true });
  } catch {
    return false;
  }
}

/** Whether a key may be bound to a member or an enterprise (genesis/src/keys.rs,
 * `check_bindable`): its canonical encoding, and not of small order (a weak key, for
 * which ZIP-215 accepts signatures anyone can make). */
export function bindable(key: Uint8Array): boolean {
  try {
    const p = ed25519.Point.fromBytes(key, false);
    return !p.isSmallOrder() && toHex(p.toBytes()) === toHex(key);
  } catch {
    return false;
  }
}

/** Whether `signature` by `key` holds over `body` under the domain's tag. */
export function verifyIn(domain: SigningDomain, key: Uint8Array, body: Uint8Array, signature: Uint8Array): boolean {
  return zip215Verify(key, signature, concat(text(DOMAIN_TAGS[domain]), new Uint8Array([0]), body));
}
