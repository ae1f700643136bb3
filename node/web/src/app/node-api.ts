// What the pages ask the node that serves them, and the trust anchor they verify its
// answers against. Nothing here decides anything: answers go to src/verify.

import { type Genesis, genesisFromToml } from "../verify/genesis.js";
import { fail, toHex } from "../verify/bytes.js";
import type { Json } from "../verify/json.js";

export class NodeError extends Error {}

/** Text of a GET (or a POST of JSON) to this node's API; a refusal names its code. */
export async function ask(path: string, body?: unknown): Promise<string> {
  let r: Response;
  try {
    r = await fetch(path, body === undefined ? {} : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  } catch (e) {
    throw new NodeError(`the node did not answer (${(e as Error).message})`);
  }
  const text = await r.text();
  if (!r.ok) {
    let code = "";
    try {
      code = String((JSON.parse(text) as { code?: string }).code ?? "");
    } catch {
      // not our JSON error: the status says enough
    }
    throw new NodeError(`the node refused: ${r.status}${code ? ` ${code}` : ""}`);
  }
  return text;
}

export function parseJson(text: string, what: string): Json {
  try {
    return JSON.parse(text) as Json;
  } catch (e) {
    fail(`${what}: not JSON: ${(e as Error).message}`);
  }
}

/** Where the genesis a page verifies against came from. */
export type AnchorSource = "file" | "label" | "node";

export interface Anchor {
  genesis: Genesis;
  source: AnchorSource;
}

const STORE = "xinlian.genesis";

export function rememberGenesis(toml: string | null): void {
  try {
    if (toml === null) localStorage.removeItem(STORE);
    else localStorage.setItem(STORE, toml);
  } catch {
    // storage refused: the file is used on this page only
  }
}

function remembered(): string | null {
  try {
    return localStorage.getItem(STORE);
  } catch {
    return null;
  }
}

/** The genesis to verify against: the user's own file if one is kept in this browser;
 * else the node's, which must hash to the chain id a label names (`?chain=`), and
 * which without one is only as good as the node (the page says so). */
export async function anchor(labelChain: string | null): Promise<Anchor> {
  const kept = remembered();
  if (kept !== null) {
    const genesis = genesisFromToml(kept);
    if (labelChain !== null && labelChain !== toHex(genesis.hash))
      fail(`the label names chain ${labelChain}, your genesis file is chain ${toHex(genesis.hash)}`);
    return { genesis, source: "file" };
  }
  const genesis = genesisFromToml(await ask("/v1/genesis"));
  if (labelChain === null) return { genesis, source: "node" };
  if (labelChain !== toHex(genesis.hash))
    fail(`the label names chain ${labelChain}, but this node serves the genesis of chain ${toHex(genesis.hash)}`);
  return { genesis, source: "label" };
}
