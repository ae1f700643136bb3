// Verified provenance (client/src/provenance.rs): a batch's state proven by the
// header's batch index, its events proven on the ledger and hashing to the state's
// event chain (so none is left out), every signer's authority; then what an inspector
// reads — custody transfers, holders and amounts, sales, recalls, the batches made
// from it — derived here from the verified events, never taken from the node.

import { fail, toHex, VerifyError, equal } from "./bytes.js";
import type { Genesis } from "./genesis.js";
import { type Json, arr, field, hex32, obj, parseDocument, str, uint } from "./json.js";
import { type DecodedRecord, decodeRecord } from "./record.js";
import { preverify } from "./ed25519.js";
import { type MapProof, verifyMapProof } from "./smt.js";
import {
  type Amount, type BatchState, type EventTime, type Party, type TraceBody, amountClear, amountValue,
  batchIndexKey, decodeBatchState, nextEventChain, partyName, quantities, sameParty,
} from "./trace.js";
import {
  type Checkpoint, type Header, type LedgerEntry, type RosterChange, type SignerAuthority, LightClient,
  authorityFailure, checkBoundBefore, checkCustodySigns, checkSignature, checkpointFromJson, entryFromJson,
  rosterChangesFromJson,
} from "./verify.js";
import { sha256 } from "@noble/hashes/sha2.js";

export const PROVENANCE_BUNDLE_FORMAT = "xinlian-provenance/v1";
const ANSWER_BATCHES_MAX = 2_000;
const ANSWER_RECORDS_MAX = 20_000;
const BUNDLE_PAGES_MAX = 256;

export type Direction = "upstream" | "downstream" | "both";

export interface BatchEvidence {
  batch: string;
  state: Uint8Array;
  indexProof: MapProof;
  events: number[];
}

export interface ProvenanceProof {
  checkpoint: Checkpoint;
  roots: string[];
  direction: Direction;
  batches: BatchEvidence[];
  missing: string[];
  records: LedgerEntry[];
  signers: { key: Uint8Array; bindings: LedgerEntry[] }[];
}

export interface ProvenanceBundle {
  format: string;
  chain: Uint8Array;
  rosterChanges: RosterChange[];
  root: string;
  direction: Direction;
  pages: ProvenanceProof[];
}

export interface VerifiedEvent {
  id: string;
  ledgerIndex: number;
  record: DecodedRecord;
  body: TraceBody;
  signer: SignerAuthority;
}

export interface Transfer {
  ship: string;
  from: Party;
  to: Party;
  amount: bigint | null;
  shippedAt: EventTime;
  receipt: string | null;
  receivedAt: EventTime | null;
}

export interface VerifiedBatch {
  state: BatchState;
  events: VerifiedEvent[];
  /** Current holders by party name; amounts null where withheld from this reader. */
  holders: Map<string, { party: Party; amount: bigint | null }>;
  inTransit: { ship: string; from: Party; to: Party; amount: bigint | null }[];
  transfers: Transfer[];
  sold: bigint | null;
  consumed: bigint | null;
  amountsWithheld: boolean;
  children: string[];
  finalAt: number;
}

export interface Provenance {
  root: string;
  direction: Direction;
  batches: Map<string, VerifiedBatch>;
  missing: Set<string>;
  finalFrom: number;
  finalTo: number;
}

// ---- reading answers ---------------------------------------------------------------

function direction(v: Json | undefined, what: string): Direction {
  const d = str(v, what);
  if (d !== "upstream" && d !== "downstream" && d !== "both") fail(`${what}: unknown direction '${d}'`);
  return d;
}

function hexBytes(v: Json | undefined, what: string): Uint8Array {
  const s = str(v, what);
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) fail(`${what}: expected hex`);
  return Uint8Array.from(s.match(/../g) ?? [], (x) => parseInt(x, 16));
}

export function provenanceFromJson(v: Json | undefined, what: string): ProvenanceProof {
  const o = obj(v, what);
  const list = (k: string) => arr(field(o, k, what), `${what}.${k}`);
  return {
    checkpoint: checkpointFromJson(field(o, "checkpoint", what), `${what}.checkpoint`),
    roots: list("roots").map((r, i) => str(r, `${what}.roots[${i}]`)),
    direction: direction(field(o, "direction", what), `${what}.direction`),
    batches: list("batches").map((b, i) => {
      const w = `${what}.batches[${i}]`;
      const bo = obj(b, w);
      const p = obj(field(bo, "index_proof", w), `${w}.index_proof`);
      const leaf = field(p, "leaf", `${w}.index_proof`);
      let pair: [Uint8Array, Uint8Array] | null = null;
      if (leaf !== null) {
        const l = arr(leaf, `${w}.index_proof.leaf`);
        if (l.length !== 2) fail(`${w}.index_proof.leaf: expected a key and a value`);
        pair = [hex32(l[0], `${w}.index_proof.leaf[0]`), hex32(l[1], `${w}.index_proof.leaf[1]`)];
      }
      return {
        batch: str(field(bo, "batch", w), `${w}.batch`),
        state: hexBytes(field(bo, "state", w), `${w}.state`),
        indexProof: {
          siblings: arr(field(p, "siblings", `${w}.index_proof`), `${w}.index_proof.siblings`).map((h, j) =>
            hex32(h, `${w}.index_proof.siblings[${j}]`),
          ),
          leaf: pair,
        },
        events: arr(field(bo, "events", w), `${w}.events`).map((e, j) => uint(e, `${w}.events[${j}]`, "u64")),
      };
    }),
    missing: list("missing").map((m, i) => str(m, `${what}.missing[${i}]`)),
    records: list("records").map((e, i) => entryFromJson(e, `${what}.records[${i}]`)),
    signers: list("signers").map((s, i) => {
      const w = `${what}.signers[${i}]`;
      const so = obj(s, w);
      return {
        key: hex32(field(so, "key", w), `${w}.key`),
        bindings: arr(field(so, "bindings", w), `${w}.bindings`).map((e, j) => entryFromJson(e, `${w}.bindings[${j}]`)),
      };
    }),
  };
}

export function provenanceBundleFromJson(textJson: string): ProvenanceBundle {
  const o = obj(parseDocument(textJson, "bundle"), "bundle");
  return {
    format: str(field(o, "format", "bundle"), "bundle.format"),
    chain: hex32(field(o, "chain", "bundle"), "bundle.chain"),
    rosterChanges: rosterChangesFromJson(field(o, "roster_changes", "bundle"), "bundle.roster_changes"),
    root: str(field(o, "root", "bundle"), "bundle.root"),
    direction: direction(field(o, "direction", "bundle"), "bundle.direction"),
    pages: arr(field(o, "pages", "bundle"), "bundle.pages").map((p, i) => provenanceFromJson(p, `bundle.pages[${i}]`)),
  };
}

// ---- verifying ---------------------------------------------------------------------

function batchFail(batch: string, reason: string): never {
  fail(`batch ${batch}: ${reason}`);
}

/** The signatures of an answer's records checked together first (WebCrypto, where the
 * platform has it): then [`verifyProvenance`] finds them checked. Records that do not
 * decode are left for it to refuse. */
export async function preverifyProvenance(client: LightClient, p: ProvenanceProof): Promise<void> {
  const items = [];
  for (const e of [...p.records, ...p.signers.flatMap((s) => s.bindings)]) {
    try {
      const rec = decodeRecord(e.record, client.recordBytesMax, "record");
      items.push({ domain: "record" as const, key: rec.signer, body: rec.envelope, signature: rec.signature });
    } catch {
      // refused, with its reason, by the verification that follows
    }
  }
  await preverify(items);
}

/** As [`verifyProvenanceBundle`], with the signatures checked together first. */
export async function verifyProvenanceBundleFast(genesis: Genesis, b: ProvenanceBundle): Promise<Provenance> {
  const client = new LightClient(genesis);
  for (const page of b.pages.slice(0, BUNDLE_PAGES_MAX)) await preverifyProvenance(client, page);
  return verifyProvenanceBundle(genesis, b);
}

/** One page, completely: the checkpoint; every record's bytes, inclusion, signature
 * and signer; every batch's state and events; every batch the walk reaches is there or
 * listed missing. */
export function verifyProvenance(client: LightClient, p: ProvenanceProof): Provenance {
  if (p.batches.length > ANSWER_BATCHES_MAX || p.records.length > ANSWER_RECORDS_MAX)
    fail(`answer exceeds its bounds: ${p.batches.length} batches and ${p.records.length} records`);
  client.checkCheckpoint(p.checkpoint);
  const header = p.checkpoint.header;
  const records = new Map<number, DecodedRecord>();
  for (const e of p.records) {
    const rec = client.verifyEntryUnsigned(e, header);
    if (records.has(e.index)) fail(`record at ledger index ${e.index} appears twice`);
    records.set(e.index, rec);
  }
  for (const rec of records.values()) checkSignature(rec);
  const authorities = verifySigners(client, records, p.signers, header);
  const batches = new Map<string, VerifiedBatch>();
  for (const ev of p.batches) {
    if (batches.has(ev.batch)) batchFail(ev.batch, "appears twice in the answer");
    batches.set(ev.batch, verifyBatch(ev, header, records, authorities));
  }
  const answer: Provenance = {
    root: p.roots[0] ?? "",
    direction: p.direction,
    batches,
    missing: new Set(p.missing.filter((b) => !batches.has(b))),
    finalFrom: header.height,
    finalTo: header.height,
  };
  for (const r of p.roots)
    if (!answer.batches.has(r) && !answer.missing.has(r))
      fail(`the answer neither includes nor lists as missing batch ${r}, which the walk reaches`);
  checkClosed(answer, p.roots);
  return answer;
}

function verifySigners(
  client: LightClient,
  records: Map<number, DecodedRecord>,
  signers: ProvenanceProof["signers"],
  header: Header,
): Map<number, SignerAuthority> {
  const chains = new Map<string, { bindings: LedgerEntry[]; authority: SignerAuthority }>();
  for (const s of signers) {
    const k = toHex(s.key);
    if (chains.has(k)) fail(`answer exceeds its bounds: bindings of key ${k} appear twice`);
    const first = [...records.values()].find((r) => equal(r.signer, s.key));
    const bad = (reason: string): never =>
      fail(`signer of record ${first ? toHex(first.id) : "0".repeat(64)} has no proven authority: ${reason}`);
    chains.set(k, { bindings: s.bindings, authority: client.bindingsAuthority(s.key, s.bindings, header, bad) });
  }
  const out = new Map<number, SignerAuthority>();
  for (const [index, rec] of [...records.entries()].sort((a, b) => a[0] - b[0])) {
    if (client.memberAtIndex(rec.signer, index)) {
      out.set(index, client.memberAuthority(rec, index));
      continue;
    }
    const bad = authorityFailure(rec);
    const chain = chains.get(toHex(rec.signer)) ?? bad(`no key bindings given for key ${toHex(rec.signer)}`);
    checkBoundBefore(chain.bindings, index, bad);
    checkCustodySigns(chain.authority, rec, bad);
    out.set(index, chain.authority);
  }
  return out;
}

function verifyBatch(
  ev: BatchEvidence,
  header: Header,
  records: Map<number, DecodedRecord>,
  authorities: Map<number, SignerAuthority>,
): VerifiedBatch {
  const name = ev.batch;
  let state: BatchState;
  try {
    state = decodeBatchState(ev.state, "state bytes");
  } catch (e) {
    batchFail(name, (e as Error).message);
  }
  if (state.batch !== name) batchFail(name, `the state is of batch ${state.batch}`);
  try {
    verifyMapProof(ev.indexProof, header.traceRoot, batchIndexKey(name), sha256(ev.state));
  } catch (e) {
    batchFail(name, `state is not the one in the batch index of header ${header.height}: ${(e as Error).message}`);
  }
  if (ev.events.length !== state.events)
    batchFail(name, `${ev.events.length} events given, the proven state counts ${state.events}`);
  let chain: Uint8Array = new Uint8Array(32);
  const events: VerifiedEvent[] = [];
  for (const index of ev.events) {
    const rec = records.get(index) ?? fail(`event at ledger index ${index} is not among the answer's records`);
    chain = nextEventChain(chain, rec.id);
    events.push({ id: toHex(rec.id), ledgerIndex: index, record: rec, body: rec.trace!, signer: authorities.get(index)! });
  }
  if (!equal(chain, state.eventChain))
    batchFail(name, "its events do not hash to the proven event chain: one is missing, extra, altered or out of order");
  return fromEvents(state, events, header.height);
}

/** The party that signed an event, in the batch's form (that of its maker) and, for a
 * custody key, bound for the batch's domain. */
function signingParty(e: VerifiedEvent, maker: Party, domain: string): Party {
  const s = e.signer;
  if (s.type === "member") fail("a custody event not signed by an enterprise");
  const p: Party = s.type === "enterprise" ? { form: "enterprise", uscc: s.uscc } : { form: "custody", key: e.record.signer };
  if (p.form !== maker.form) fail(`signed by ${partyName(p)}, not in the form the batch names its parties in`);
  if (s.type === "custody" && s.domain !== domain) fail(`signed by a custody key bound for domain ${s.domain}, not ${domain}`);
  return p;
}

function fromEvents(state: BatchState, events: VerifiedEvent[], finalAt: number): VerifiedBatch {
  const withheld = events.some((e) =>
    quantities(e.body).some((q) => q.batch === state.batch && amountValue(q.quantity.amount) === null),
  );
  const zero = withheld ? null : 0n;
  const vb: VerifiedBatch = {
    state,
    events,
    holders: new Map(),
    inTransit: [],
    transfers: [],
    sold: zero,
    consumed: zero,
    amountsWithheld: withheld,
    children: [],
    finalAt,
  };
  replay(vb);
  return vb;
}

function add(vb: VerifiedBatch, p: Party, q: bigint | null): void {
  const k = partyName(p);
  const held = vb.holders.get(k);
  const before = held ? held.amount : q === null ? null : 0n;
  vb.holders.set(k, { party: p, amount: before !== null && q !== null ? before + q : null });
}

function take(vb: VerifiedBatch, p: Party, q: bigint | null): void {
  const k = partyName(p);
  if (q === null) {
    if (!vb.holders.has(k)) fail(`${k} gives some of it but never held it`);
    return;
  }
  const held = vb.holders.get(k)?.amount ?? 0n;
  if (held < q) fail(`${k} gives ${q} but holds ${held}`);
  if (held === q) vb.holders.delete(k);
  else vb.holders.set(k, { party: p, amount: held - q });
}

/** Holdings, transit, sales, consumption and children from the events, each checked to
 * be an event of this batch. */
function replay(vb: VerifiedBatch): void {
  const { createdBy: maker, domain, batch: name } = vb.state;
  const transit = new Map<string, VerifiedBatch["inTransit"][number]>();
  let recalled: string | null = null;
  const shown = (a: Amount) => (vb.amountsWithheld ? null : amountValue(a));
  vb.events.forEach((e, seq) => {
    try {
      replayEvent(vb, e, seq, { maker, domain, name, transit, shown, recall: (id) => (recalled = id) });
    } catch (x) {
      if (x instanceof VerifyError) fail(`batch ${name}, event ${seq} (record ${e.id}): ${x.message}`);
      throw x;
    }
  });
  const proven = vb.state.recalled ? toHex(vb.state.recalled) : null;
  if (recalled !== proven) batchFail(name, "recall status differs from the proven state");
  vb.inTransit = [...transit.values()].sort((a, b) => (a.ship < b.ship ? -1 : 1));
}

interface ReplayContext {
  maker: Party;
  domain: string;
  name: string;
  transit: Map<string, VerifiedBatch["inTransit"][number]>;
  shown: (a: Amount) => bigint | null;
  recall: (id: string) => void;
}

function replayEvent(vb: VerifiedBatch, e: VerifiedEvent, seq: number, c: ReplayContext): void {
  const b = e.body;
  const who = () => signingParty(e, c.maker, c.domain);
  if (seq === 0) {
    if (e.id !== toHex(vb.state.origin)) fail("event 0 is not the record that made the batch");
    let amount: Amount;
    if (b.kind === "commission" && b.batch === c.name && vb.state.parents.length === 0) amount = b.quantity.amount;
    else if (b.kind === "transform") {
      const out = b.outputs.find((o) => o.batch === c.name) ?? fail("the transform that made the batch does not output it");
      const inputs = b.inputs.map((i) => i.batch);
      if (inputs.length !== vb.state.parents.length || inputs.some((x, i) => x !== vb.state.parents[i]))
        fail("the proven parents are not the transform's inputs");
      amount = out.quantity.amount;
    } else fail(`a ${b.kind} cannot make a batch`);
    if (amountClear(amount) !== vb.state.createdAmount) fail("created amount differs from the proven state");
    const m = who();
    if (!sameParty(m, vb.state.createdBy))
      fail(`made by ${partyName(m)}, not by ${partyName(vb.state.createdBy)} as the proven state says`);
    add(vb, m, c.shown(amount));
    return;
  }
  if (b.kind === "ship" && b.batch === c.name) {
    const from = who();
    if (b.to.form !== c.maker.form) fail(`addressed to ${partyName(b.to)}, not in the form the batch names its parties in`);
    if (sameParty(b.to, from)) fail(`${partyName(from)} ships to itself`);
    const amount = c.shown(b.quantity.amount);
    take(vb, from, amount);
    vb.transfers.push({ ship: e.id, from, to: b.to, amount, shippedAt: b.time, receipt: null, receivedAt: null });
    c.transit.set(e.id, { ship: e.id, from, to: b.to, amount });
  } else if (b.kind === "receive") {
    const ship = toHex(b.shipment);
    const t = c.transit.get(ship) ?? fail(`receives shipment ${ship} which is not an open shipment of this batch`);
    c.transit.delete(ship);
    if (!sameParty(who(), t.to)) fail(`received by other than the addressee ${partyName(t.to)}`);
    const tr = vb.transfers.find((x) => x.ship === ship)!;
    tr.receipt = e.id;
    tr.receivedAt = b.time;
    add(vb, t.to, t.amount);
  } else if (b.kind === "transform") {
    const input = b.inputs.find((i) => i.batch === c.name) ?? fail("a transform of this batch that does not take it as input");
    const amount = c.shown(input.quantity.amount);
    take(vb, who(), amount);
    vb.consumed = vb.consumed !== null && amount !== null ? vb.consumed + amount : null;
    vb.children.push(...b.outputs.map((o) => o.batch));
  } else if (b.kind === "sell" && b.batch === c.name) {
    const amount = c.shown(b.quantity.amount);
    take(vb, who(), amount);
    vb.sold = vb.sold !== null && amount !== null ? vb.sold + amount : null;
  } else if (b.kind === "inspect" && b.batch === c.name) {
    // nothing moves
  } else if (b.kind === "recall" && b.batch === c.name) {
    if (e.signer.type !== "member" && !sameParty(who(), c.maker)) fail("recalled by a party that did not make the batch");
    c.recall(e.id);
  } else fail(`a ${b.kind} that is not an event of this batch`);
}

function next(p: Provenance, b: VerifiedBatch): string[] {
  const n: string[] = [];
  if (p.direction !== "downstream") n.push(...b.state.parents);
  if (p.direction !== "upstream") n.push(...b.children);
  return n;
}

/** Every batch a walk from the roots reaches is verified or listed missing. */
function checkClosed(p: Provenance, roots: string[]): void {
  const seen = new Set<string>();
  const queue = [...roots];
  while (queue.length > 0) {
    const b = queue.shift()!;
    if (seen.has(b)) continue;
    seen.add(b);
    const vb = p.batches.get(b);
    if (vb) {
      for (const n of next(p, vb)) {
        if (!p.batches.has(n) && !p.missing.has(n))
          fail(`the answer neither includes nor lists as missing batch ${n}, which the walk reaches`);
        queue.push(n);
      }
    } else if (!p.missing.has(b)) fail(`the answer neither includes nor lists as missing batch ${b}, which the walk reaches`);
  }
}

/** Adds a continuation page; one proven against an older header than the first page's
 * is refused. */
export function merge(into: Provenance, other: Provenance): void {
  if (other.direction !== into.direction)
    fail(`a continuation page walks ${other.direction}, the answer ${into.direction}: it could leave out a branch`);
  if (other.finalFrom < into.finalFrom)
    fail(`a continuation page is proven against header ${other.finalFrom}, older than the first page's header ${into.finalFrom}: its batches could omit later events such as a recall`);
  for (const [k, v] of other.batches) {
    into.missing.delete(k);
    if (!into.batches.has(k)) into.batches.set(k, v);
  }
  for (const m of other.missing) if (!into.batches.has(m)) into.missing.add(m);
  into.finalTo = Math.max(into.finalTo, other.finalTo);
}

/** An offline provenance bundle, as a fresh client holding only `genesis`. */
export function verifyProvenanceBundle(genesis: Genesis, b: ProvenanceBundle): Provenance {
  if (b.format !== PROVENANCE_BUNDLE_FORMAT) fail(`bundle format '${b.format}' is not ${PROVENANCE_BUNDLE_FORMAT}`);
  if (b.pages.length === 0 || b.pages.length > BUNDLE_PAGES_MAX)
    fail(`answer exceeds its bounds: ${b.pages.length} pages, 1 to ${BUNDLE_PAGES_MAX} allowed`);
  const client = new LightClient(genesis);
  if (!equal(b.chain, client.chain))
    fail(`bundle is for chain ${toHex(b.chain)}, but the genesis is chain ${toHex(client.chain)}`);
  client.acceptChanges(b.rosterChanges);
  let out: Provenance | null = null;
  for (const page of b.pages) {
    const v = verifyProvenance(client, page);
    if (out === null) {
      if (page.roots[0] !== b.root || page.direction !== b.direction)
        batchFail(b.root, "the bundle's first page does not start from its root");
      out = v;
    } else merge(out, v);
  }
  return out!;
}

/** Batches reached from `from` by parents (upstream) or children, breadth first. */
export function walk(p: Provenance, from: string, towards: "origins" | "products"): VerifiedBatch[] {
  const seen = new Set([from]);
  const queue = [from];
  const out: VerifiedBatch[] = [];
  while (queue.length > 0) {
    const b = queue.shift()!;
    const vb = p.batches.get(b);
    if (!vb) continue;
    if (b !== from) out.push(vb);
    for (const n of towards === "origins" ? vb.state.parents : vb.children)
      if (!seen.has(n)) {
        seen.add(n);
        queue.push(n);
      }
  }
  return out;
}

/** Recalls that affect `batch`: its own and any of a batch upstream of it. */
export function recallsAffecting(p: Provenance, batch: string): { batch: string; recall: string }[] {
  const own = p.batches.get(batch);
  return [...(own ? [own] : []), ...walk(p, batch, "origins")]
    .filter((b) => b.state.recalled !== null)
    .map((b) => ({ batch: b.state.batch, recall: toHex(b.state.recalled!) }));
}

export type ProvenanceVerdict = { verified: true; provenance: Provenance } | { verified: false; reason: string };

export async function provenanceVerdictOf(genesis: Genesis, text: string): Promise<ProvenanceVerdict> {
  try {
    return { verified: true, provenance: await verifyProvenanceBundleFast(genesis, provenanceBundleFromJson(text)) };
  } catch (e) {
    if (e instanceof VerifyError) return { verified: false, reason: e.message };
    return { verified: false, reason: `malformed: ${(e as Error).message}` };
  }
}
