// The browser's verifier run by Node.js, for the tests that hold it to the Rust one
// (tests/tests/web.rs): the same modules the pages bundle, fed files.
//   verify-cli.mjs bundles GENESIS.toml BUNDLES.jsonl   one verdict per line, as JSON
//   verify-cli.mjs provenance GENESIS.toml BUNDLES.jsonl provenance bundles: verdicts, and
//                                                        what each verified batch shows
//   verify-cli.mjs credit GENESIS.toml REPORTS.jsonl     credit reports: verdicts, grades
//   verify-cli.mjs genesis GENESIS.toml                  the chain id
//   verify-cli.mjs signatures CASES.json                 speccheck cases accepted
//   verify-cli.mjs merkle RFC9162_DIR                    vectors, checked against wantErr

import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { sha256 } from "@noble/hashes/sha2.js";
import { fromHex, toHex } from "../verify/bytes.js";
import { zip215Verify } from "../verify/ed25519.js";
import { genesisFromToml } from "../verify/genesis.js";
import { verifyConsistency, verifyInclusion } from "../verify/merkle.js";
import { verdictOf } from "../verify/verify.js";
import { type Provenance, provenanceVerdictOf } from "../verify/provenance.js";
import { partyName } from "../verify/trace.js";
import { creditVerdictOf } from "../verify/credit.js";

const [command, path] = process.argv.slice(2);
const read = (p: string) => readFileSync(p, "utf8");

function bundles(genesisPath: string, listPath: string): void {
  const genesis = genesisFromToml(read(genesisPath));
  const started = performance.now();
  let n = 0;
  for (const line of read(listPath).split("\n")) {
    if (line === "") continue;
    const v = verdictOf(genesis, line);
    n++;
    process.stdout.write(
      JSON.stringify(v.verified ? { verified: true, id: v.record.id, signer: v.record.signer } : v) + "\n",
    );
  }
  process.stderr.write(`${n} bundles in ${(performance.now() - started).toFixed(0)} ms\n`);
}

const big = (v: bigint | null) => (v === null ? null : v.toString());

/** What an inspector reads of a verified answer, in a form the Rust test builds too. */
function summary(p: Provenance): unknown {
  const batches: Record<string, unknown> = {};
  for (const [name, b] of [...p.batches.entries()].sort((x, y) => (x[0] < y[0] ? -1 : 1))) {
    batches[name] = {
      holders: [...b.holders.values()]
        .map((h) => [partyName(h.party), big(h.amount)] as const)
        .sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)),
      recalled: b.state.recalled ? toHex(b.state.recalled) : null,
      transfers: b.transfers.map((t) => [partyName(t.from), partyName(t.to), big(t.amount), t.receipt]),
      in_transit: b.inTransit.length,
      sold: big(b.sold),
      consumed: big(b.consumed),
      withheld: b.amountsWithheld,
      children: b.children,
    };
  }
  return { final_from: p.finalFrom, missing: [...p.missing].sort(), batches };
}

async function provenance(genesisPath: string, listPath: string): Promise<void> {
  const genesis = genesisFromToml(read(genesisPath));
  for (const line of read(listPath).split("\n")) {
    if (line === "") continue;
    const v = await provenanceVerdictOf(genesis, line);
    process.stdout.write(JSON.stringify(v.verified ? { verified: true, shows: summary(v.provenance) } : v) + "\n");
  }
}

async function credit(genesisPath: string, listPath: string): Promise<void> {
  const genesis = genesisFromToml(read(genesisPath));
  for (const line of read(listPath).split("\n")) {
    if (line === "") continue;
    const v = await creditVerdictOf(genesis, line);
    if (!v.verified) {
      process.stdout.write(JSON.stringify(v) + "\n");
      continue;
    }
    const g = v.credit.grade;
    const shows = {
      name: v.credit.history.name,
      grade: g.grade,
      score: g.score,
      reasons: g.reasons.map((r) => [r.rule, r.points, r.record]),
      caps: g.caps.map((r) => [r.rule, r.record]),
      commitments: v.credit.history.commitments.map((c) => [c.at.id, c.status]),
      listings: v.credit.history.listings.map((l) => [l.list, l.added.id, l.until, l.removed?.at.id ?? null]),
    };
    process.stdout.write(JSON.stringify({ verified: true, shows }) + "\n");
  }
}

function b64(v: unknown): Uint8Array | null {
  if (typeof v !== "string") return null;
  return Uint8Array.from(Buffer.from(v, "base64"));
}

/** Short "don't care" roots compare by their SHA-256, as client/tests/rfc9162.rs does. */
function root(v: unknown): Uint8Array | null {
  const b = b64(v);
  if (b === null) return null;
  return b.length === 32 ? b : sha256(b);
}

function files(dir: string): string[] {
  return readdirSync(dir)
    .flatMap((n) => (statSync(join(dir, n)).isDirectory() ? files(join(dir, n)) : [join(dir, n)]))
    .filter((f) => f.endsWith(".json"))
    .sort();
}

function merkle(dir: string): void {
  const counts = { good: 0, bad: 0, wrong: [] as string[] };
  const run = (kind: string, check: (v: Record<string, unknown>) => void) => {
    for (const f of files(join(dir, kind))) {
      const v = JSON.parse(read(f)) as Record<string, unknown>;
      let ok = true;
      try {
        check(v);
      } catch {
        ok = false;
      }
      if (ok === (v["wantErr"] === true)) counts.wrong.push(f);
      else if (ok) counts.good++;
      else counts.bad++;
    }
  };
  const proof = (v: unknown) => {
    const p = ((v ?? []) as unknown[]).map(b64);
    if (p.some((x) => x === null || x.length !== 32)) throw new Error("not a 32-byte hash");
    return p as Uint8Array[];
  };
  const hash = (v: unknown) => {
    const h = b64(v);
    if (h === null || h.length !== 32) throw new Error("not a 32-byte hash");
    return h;
  };
  run("inclusion", (v) =>
    verifyInclusion(hash(v["leafHash"]), BigInt(v["leafIdx"] as number), BigInt(v["treeSize"] as number), proof(v["proof"]), hash(v["root"])),
  );
  run("consistency", (v) => {
    const [r1, r2] = [root(v["root1"]), root(v["root2"])];
    if (r1 === null || r2 === null) throw new Error("no root");
    verifyConsistency(BigInt(v["size1"] as number), BigInt(v["size2"] as number), r1, r2, proof(v["proof"]));
  });
  process.stdout.write(JSON.stringify(counts) + "\n");
}

function signatures(casesPath: string): void {
  const cases = JSON.parse(read(casesPath)) as { pub_key: string; signature: string; message: string }[];
  const accepted = cases.flatMap((c, i) => {
    const [k, s, m] = [c.pub_key, c.signature, c.message].map((x) => fromHex(x, "case"));
    return zip215Verify(k!, s!, m!) ? [i] : [];
  });
  process.stdout.write(JSON.stringify(accepted) + "\n");
}

if (command === "bundles" && path && process.argv[4]) bundles(path, process.argv[4]);
else if (command === "provenance" && path && process.argv[4]) await provenance(path, process.argv[4]);
else if (command === "credit" && path && process.argv[4]) await credit(path, process.argv[4]);
else if (command === "genesis" && path) process.stdout.write(toHex(genesisFromToml(read(path)).hash) + "\n");
else if (command === "signatures" && path) signatures(path);
else if (command === "merkle" && path) merkle(path);
else {
  process.stderr.write("usage: verify-cli.mjs bundles GENESIS BUNDLES.jsonl | genesis GENESIS | signatures CASES | merkle DIR\n");
  process.exit(2);
}
