// An enterprise's complete credit record and its grade (client/src/credit.rs): the
// credit state proven by the header's credit index (`credit_root`), every credit record
// proven and hashing to the state's count and chain (none left out), the history
// replayed by the rules execution applied and deriving the proven profile, then the
// grade computed from it under the rules in force — what a credit report proves.

import { fail, equal, Reader, taggedHash, toHex, Writer, VerifyError } from "./bytes.js";
import type { Genesis, Grading } from "./genesis.js";
import { arr, field, hex32, obj, parseDocument, str } from "./json.js";
import type { CreditBody, DecodedRecord } from "./record.js";
import { type MapProof, verifyMapAbsent, verifyMapProof } from "./smt.js";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  type Checkpoint, type LedgerEntry, type RosterChange, LightClient, checkSignature, checkpointFromJson,
  entryFromJson, headerHash, rosterChangesFromJson,
} from "./verify.js";
import { preverify } from "./ed25519.js";

export const CREDIT_REPORT_FORMAT = "xinlian-credit/v1";
const CREDIT_RECORDS_MAX = 20_000;
const CREDIT_STATE_BYTES_MAX = 1024;
const DAY_MS = 86_400_000;
const GRADES = ["A", "B", "C", "D"];

export interface CreditProof {
  checkpoint: Checkpoint;
  uscc: string;
  state: Uint8Array | null;
  indexProof: MapProof;
  records: LedgerEntry[];
}

export interface CreditReport {
  format: string;
  chain: Uint8Array;
  rosterChanges: RosterChange[];
  proof: CreditProof;
}

export interface Profile {
  commitments: number; pending: number; fulfilled: number; notVerifiable: number;
  breachedMinor: number; breachedGeneral: number; breachedSerious: number; repaired: number;
  breachedNotification: number; onRewardList: boolean; onSeriousList: boolean;
  rewardListUntil: number | null; seriousListUntil: number | null;
}

type Status = "pending" | "fulfilled" | "not_verifiable" | "breached_minor" | "breached_general" | "breached_serious" | `repaired_${string}`;

export interface At { id: string; index: number; date: number }

export interface CommitmentView {
  at: At; kind: string; matter: string; acceptingAgency: string; domain: string; deadline: number;
  status: Status; outcome: { at: At; verdict: string; document: string } | null;
  repairs: { application: At; decision: { at: At; approved: boolean; reason: string } | null }[];
}

export interface Listing {
  list: "reward" | "serious_dishonesty"; domain: string; added: At; reason: string; until: number;
  removed: { at: At; reason: string } | null;
}

export interface CreditHistory { uscc: string; name: string; commitments: CommitmentView[]; listings: Listing[]; profile: Profile }

export interface Reason { record: string | null; rule: string; points: number; detail: string }

export interface GradeReport { grade: string; score: number; rulesVersion: number; asOf: number; reasons: Reason[]; caps: Reason[] }

export interface VerifiedCredit { height: number; headerHash: string; history: CreditHistory; grade: GradeReport }

// ---- reading ------------------------------------------------------------------------

export function creditReportFromJson(text: string): CreditReport {
  const o = obj(parseDocument(text, "report"), "report");
  const p = obj(field(o, "proof", "report"), "report.proof");
  const ip = obj(field(p, "index_proof", "proof"), "proof.index_proof");
  const leaf = field(ip, "leaf", "proof.index_proof");
  let pair: [Uint8Array, Uint8Array] | null = null;
  if (leaf !== null) {
    const l = arr(leaf, "proof.index_proof.leaf");
    if (l.length !== 2) fail("proof.index_proof.leaf: expected a key and a value");
    pair = [hex32(l[0], "leaf key"), hex32(l[1], "leaf value")];
  }
  const state = field(p, "state", "proof");
  const stateHex = state === null ? null : str(state, "proof.state");
  if (stateHex !== null && (stateHex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(stateHex))) fail("proof.state: expected hex");
  return {
    format: str(field(o, "format", "report"), "report.format"),
    chain: hex32(field(o, "chain", "report"), "report.chain"),
    rosterChanges: rosterChangesFromJson(field(o, "roster_changes", "report"), "report.roster_changes"),
    proof: {
      checkpoint: checkpointFromJson(field(p, "checkpoint", "proof"), "proof.checkpoint"),
      uscc: str(field(p, "uscc", "proof"), "proof.uscc"),
      state: stateHex === null ? null : Uint8Array.from(stateHex.match(/../g) ?? [], (x) => parseInt(x, 16)),
      indexProof: { siblings: arr(field(ip, "siblings", "index_proof"), "siblings").map((h, i) => hex32(h, `siblings[${i}]`)), leaf: pair },
      records: arr(field(p, "records", "proof"), "proof.records").map((e, i) => entryFromJson(e, `proof.records[${i}]`)),
    },
  };
}

function decodeState(bytes: Uint8Array): { uscc: string; records: number; chain: Uint8Array; profile: Profile } {
  if (bytes.length > CREDIT_STATE_BYTES_MAX) fail(`credit state bytes: ${bytes.length} bytes exceed ${CREDIT_STATE_BYTES_MAX}`);
  const r = new Reader(bytes, "credit state bytes");
  const date = (r: Reader) => {
    const v = r.varint(32);
    return Number(v & 1n ? -(v >> 1n) - 1n : v >> 1n);
  };
  const s = {
    uscc: r.str(),
    records: r.number(32),
    chain: r.fixed(32),
    profile: {
      commitments: r.number(32), pending: r.number(32), fulfilled: r.number(32), notVerifiable: r.number(32),
      breachedMinor: r.number(32), breachedGeneral: r.number(32), breachedSerious: r.number(32), repaired: r.number(32),
      breachedNotification: r.number(32), onRewardList: r.bool(), onSeriousList: r.bool(),
      rewardListUntil: r.option(date), seriousListUntil: r.option(date),
    },
  };
  if (r.remaining !== 0) fail(`credit state bytes: ${r.remaining} trailing bytes after the value`);
  return s;
}

// ---- verifying ----------------------------------------------------------------------

export function nextCreditChain(prev: Uint8Array, index: number, id: Uint8Array): Uint8Array {
  return taggedHash("xinlian/credit-records/v1", new Writer().fixed(prev).varint(index).fixed(id).bytes());
}

/** Days since 1970-01-01 in Beijing time (UTC+8): the date of a header's time. */
export function dateOfMsBeijing(ms: number): number {
  return Math.floor((ms + 8 * 3_600_000) / DAY_MS);
}

/** A report, completely, as a fresh client holding only `genesis`. */
export async function verifyCreditReport(genesis: Genesis, r: CreditReport): Promise<VerifiedCredit> {
  if (r.format !== CREDIT_REPORT_FORMAT) fail(`report format '${r.format}' is not ${CREDIT_REPORT_FORMAT}`);
  if (!equal(r.chain, genesis.hash)) fail(`credit report is for chain ${toHex(r.chain)}, but the genesis is chain ${toHex(genesis.hash)}`);
  const client = new LightClient(genesis);
  client.acceptChanges(r.rosterChanges);
  const items = [];
  for (const e of r.proof.records.slice(0, CREDIT_RECORDS_MAX)) {
    try {
      const rec = client.verifyEntryUnsigned(e, r.proof.checkpoint.header);
      items.push({ domain: "record" as const, key: rec.signer, body: rec.envelope, signature: rec.signature });
    } catch {
      // refused, with its reason, below
    }
  }
  await preverify(items);
  return verifyCredit(client, r.proof.uscc, r.proof);
}

export function verifyCredit(client: LightClient, uscc: string, p: CreditProof): VerifiedCredit {
  if (p.records.length > CREDIT_RECORDS_MAX) fail(`answer exceeds its bounds: ${p.records.length} records, bound ${CREDIT_RECORDS_MAX}`);
  if (p.uscc !== uscc) fail(`asked about ${uscc}, the proven state is of ${p.uscc}`);
  client.checkCheckpoint(p.checkpoint);
  const header = p.checkpoint.header;
  const key = sha256(new TextEncoder().encode(uscc));
  if (p.state === null) {
    try {
      verifyMapAbsent(p.indexProof, header.creditRoot, key);
    } catch (e) {
      fail(`${uscc} is claimed not registered, but the credit index of header ${header.height} does not prove it absent: ${(e as Error).message}`);
    }
    if (p.records.length > 0) fail(`${p.records.length} records given, the proven credit state counts 0: records are missing or extra`);
    fail(`${uscc} is not registered as of header ${header.height}`);
  }
  const state = decodeState(p.state);
  if (state.uscc !== uscc) fail(`asked about ${uscc}, the proven state is of ${state.uscc}`);
  try {
    verifyMapProof(p.indexProof, header.creditRoot, key, sha256(p.state));
  } catch (e) {
    fail(`the credit state is not the one in the credit index of header ${header.height}: ${(e as Error).message}`);
  }
  if (p.records.length !== state.records)
    fail(`${p.records.length} records given, the proven credit state counts ${state.records}: records are missing or extra`);
  const records: [number, DecodedRecord][] = [];
  for (const e of p.records) {
    const last = records.at(-1);
    if (last && e.index <= last[0]) fail(`records out of ledger order: index ${e.index} follows index ${last[0]}`);
    records.push([e.index, client.verifyEntryUnsigned(e, header)]);
  }
  for (const [, rec] of records) checkSignature(rec);
  let chain: Uint8Array = new Uint8Array(32);
  for (const [index, rec] of records) chain = nextCreditChain(chain, index, rec.id);
  if (!equal(chain, state.chain)) fail("the records do not hash to the proven credit chain: one is altered, substituted or out of place");
  for (const [index, rec] of records) if (client.memberAtIndex(rec.signer, index)) client.memberAuthority(rec, index);
  const history = fold(client, uscc, records);
  if (JSON.stringify(history.profile) !== JSON.stringify(state.profile))
    fail(`the records derive profile ${JSON.stringify(history.profile)}, the proven state holds ${JSON.stringify(state.profile)}`);
  const rules = client.rosterAt(header.height).policy.grading;
  return { height: header.height, headerHash: toHex(headerHash(header)), history, grade: grade(history, rules, dateOfMsBeijing(header.timeMs)) };
}

/** The history replayed by the rules execution applied to it (`CreditHistory::fold`). */
function fold(client: LightClient, uscc: string, records: [number, DecodedRecord][]): CreditHistory {
  const profile: Profile = {
    commitments: 0, pending: 0, fulfilled: 0, notVerifiable: 0, breachedMinor: 0, breachedGeneral: 0,
    breachedSerious: 0, repaired: 0, breachedNotification: 0, onRewardList: false, onSeriousList: false,
    rewardListUntil: null, seriousListUntil: null,
  };
  const slot: Record<string, keyof Profile> = {
    pending: "pending", fulfilled: "fulfilled", not_verifiable: "notVerifiable", breached_minor: "breachedMinor",
    breached_general: "breachedGeneral", breached_serious: "breachedSerious",
  };
  const count = (s: Status) => (s.startsWith("repaired_") ? "repaired" : slot[s]!) as "pending";
  const moved = (from: Status, to: Status) => {
    profile[count(from)] = Math.max(0, profile[count(from)] - 1);
    profile[count(to)] += 1;
  };
  let key: Uint8Array | null = null;
  let name: string | null = null;
  const commitments: CommitmentView[] = [];
  const byId = new Map<string, number>();
  const outcomes = new Map<string, number>();
  const repairs = new Map<string, [number, number]>();
  const listings: Listing[] = [];
  for (const [index, rec] of records) {
    const id = toHex(rec.id);
    const member = client.memberAtIndex(rec.signer, index)?.id ?? null;
    const grading = client.rosterAtIndex(index).policy.grading;
    const at = (date: number): At => ({ id, index, date });
    function bad(reason: string): never {
      fail(`record ${id} at ledger index ${index}: ${reason}`);
    }
    const byMember = (agency: string | null) => {
      if (member === null) bad(`signed by ${toHex(rec.signer)}, not by a consortium member`);
      if (agency !== null && member !== agency) bad(`signed by member '${member}', not by the accepting agency '${agency}'`);
    };
    const byEnterprise = () => {
      if (member !== null) bad(`signed by member '${member}', not by the enterprise`);
      if (key === null || !equal(key, rec.signer)) bad(`signed by ${toHex(rec.signer)}, not by the key the enterprise had bound then`);
    };
    const concerns = (u: string) => {
      if (u !== uscc) bad(`concerns ${u}, not ${uscc}`);
    };
    if (name === null && rec.kind !== "register_entity") bad("precedes the enterprise's registration");
    const b: CreditBody | null = rec.credit;
    switch (rec.kind) {
      case "register_entity": {
        const reg = rec.binding!;
        if (reg.kind !== "register_entity") bad("not a registration");
        concerns(reg.uscc);
        if (name !== null) bad("registers the enterprise a second time");
        byMember(null);
        key = reg.key;
        name = reg.name;
        break;
      }
      case "rotate_entity_key": {
        const rot = rec.binding!;
        if (rot.kind !== "rotate_entity_key") bad("not a rotation");
        concerns(rot.uscc);
        if (member === null) byEnterprise();
        key = rot.key;
        break;
      }
      case "revoke_entity_key":
        if (b?.kind !== "revoke_entity_key") bad("not a key revocation");
        concerns(b.uscc);
        if (member === null) byEnterprise();
        key = null;
        break;
      case "commitment":
        if (b?.kind !== "commitment") bad("not a commitment");
        concerns(b.subject);
        byEnterprise();
        byId.set(id, commitments.length);
        commitments.push({ at: at(b.date), kind: b.commitmentKind, matter: b.matter, acceptingAgency: b.acceptingAgency, domain: b.domain, deadline: b.deadline, status: "pending", outcome: null, repairs: [] });
        profile.commitments += 1;
        profile.pending += 1;
        break;
      case "outcome": {
        if (b?.kind !== "outcome") bad("not an outcome");
        const i = byId.get(toHex(b.commitment)) ?? bad(`decides commitment ${toHex(b.commitment)}, not one of this enterprise's`);
        const c = commitments[i]!;
        byMember(c.acceptingAgency);
        if (c.status !== "pending") bad(`decides commitment ${toHex(b.commitment)}, already decided`);
        c.status = b.verdict as Status;
        c.outcome = { at: at(b.date), verdict: b.verdict, document: b.document };
        moved("pending", c.status);
        if (c.status.startsWith("breached_") && c.kind === "approval_substitute") profile.breachedNotification += 1;
        outcomes.set(id, i);
        break;
      }
      case "list_measure": {
        if (b?.kind !== "list_measure") bad("not a list measure");
        concerns(b.subject);
        byMember(null);
        const open = listings.find((l) => l.list === b.list && l.removed === null);
        if (b.action === "add") {
          if (open) bad(`adds to the ${b.list} list, already listed by ${open.added.id}`);
          const r = b.basis.find((x) => !outcomes.has(toHex(x)));
          if (r) bad(`cites ${toHex(r)}, not an outcome of this enterprise`);
          const days = b.list === "reward" ? grading.rewardListDays : grading.seriousListDays;
          listings.push({ list: b.list, domain: b.domain, added: at(b.date), reason: b.reason, until: b.date + days, removed: null });
        } else {
          if (!open) bad(`removes from the ${b.list} list, not listed`);
          open.removed = { at: at(b.date), reason: b.reason };
        }
        const until = [...listings].reverse().find((l) => l.list === b.list && l.removed === null)?.until ?? null;
        if (b.list === "reward") [profile.onRewardList, profile.rewardListUntil] = [until !== null, until];
        else [profile.onSeriousList, profile.seriousListUntil] = [until !== null, until];
        break;
      }
      case "repair_application": {
        if (b?.kind !== "repair_application") bad("not a repair application");
        byEnterprise();
        const i = outcomes.get(toHex(b.outcome)) ?? bad(`repairs ${toHex(b.outcome)}, not an outcome of this enterprise`);
        const c = commitments[i]!;
        if (!c.status.startsWith("breached_")) bad(`repairs a commitment whose status is ${c.status}`);
        if (c.repairs.some((r) => r.decision === null)) bad("an earlier application is still open");
        repairs.set(id, [i, c.repairs.length]);
        c.repairs.push({ application: at(b.date), decision: null });
        break;
      }
      case "repair_decision": {
        if (b?.kind !== "repair_decision") bad("not a repair decision");
        const [i, j] = repairs.get(toHex(b.application)) ?? bad(`decides ${toHex(b.application)}, not a repair application of this enterprise`);
        const c = commitments[i]!;
        byMember(c.acceptingAgency);
        const r = c.repairs[j]!;
        if (r.decision !== null) bad(`decides ${toHex(b.application)}, already decided`);
        r.decision = { at: at(b.date), approved: b.approved, reason: b.reason };
        if (b.approved) {
          if (!c.status.startsWith("breached_")) bad(`repairs a commitment whose status is ${c.status}`);
          const sev = c.status.slice("breached_".length);
          moved(c.status, `repaired_${sev}`);
          c.status = `repaired_${sev}`;
          if (c.kind === "approval_substitute") profile.breachedNotification = Math.max(0, profile.breachedNotification - 1);
        }
        break;
      }
      default:
        bad(`a ${rec.kind} is not a credit record`);
    }
  }
  if (name === null) fail(`the credit record of ${uscc} holds no registration`);
  return { uscc, name, commitments, listings, profile };
}

function inWindow(dated: number, day: number, w: { windowDays: number }): boolean {
  return dated <= day && day < dated + w.windowDays;
}

const percent = (points: number, pct: number) => Math.trunc((points * pct) / 100);

/** The grade of a verified history on `day` under `rules` (`credit::grade`). */
export function grade(h: CreditHistory, rules: Grading, day: number): GradeReport {
  const reasons: Reason[] = [{ record: null, rule: "base", points: rules.base, detail: "the score of a record with nothing in any window" }];
  const caps: Reason[] = [];
  let fulfilledTotal = 0;
  for (const c of h.commitments) {
    const o = c.outcome;
    if (!o || o.verdict === "not_verifiable") continue;
    if (o.verdict === "fulfilled") {
      if (!inWindow(o.at.date, day, rules.fulfilled)) continue;
      const points = Math.min(rules.fulfilled.points, Math.max(0, rules.fulfilledCap - fulfilledTotal));
      fulfilledTotal += points;
      reasons.push({ record: o.at.id, rule: "fulfilled", points, detail: `commitment ${c.at.id} kept` });
      continue;
    }
    const sev = o.verdict.slice("breached_".length);
    const w = sev === "minor" ? rules.breachMinor : sev === "general" ? rules.breachGeneral : rules.breachSerious;
    if (!inWindow(o.at.date, day, w)) continue;
    const pct = rules.domainPercent.find((d) => d.domain === c.domain)?.percent ?? 100;
    let points = percent(w.points, pct);
    const repaired = c.repairs.map((r) => r.decision).find((d) => d !== null && d.approved && d.at.date <= day);
    if (repaired) points = percent(points, rules.repairedPercent);
    reasons.push({ record: o.at.id, rule: `breach_${sev}`, points, detail: `commitment ${c.at.id} breached (${c.domain}, ${pct} %)${repaired ? "; repaired" : ""}` });
    if (sev === "serious" && !repaired) caps.push({ record: o.at.id, rule: "serious_breach_cap", points: 0, detail: "unrepaired serious breach" });
  }
  const inForce = (l: Listing) => l.added.date <= day && day < l.until && (l.removed === null || l.removed.at.date > day);
  for (const l of h.listings.filter((l) => l.list === "reward" && inForce(l)))
    reasons.push({ record: l.added.id, rule: "reward_list", points: rules.rewardListPoints, detail: `on the reward list (${l.domain})` });
  for (const l of h.listings.filter((l) => l.list === "serious_dishonesty" && inForce(l)))
    caps.push({ record: l.added.id, rule: "serious_list_cap", points: 0, detail: `on the serious-dishonesty list (${l.domain})` });
  const score = reasons.reduce((s, r) => s + r.points, 0);
  let g = score >= rules.aMin ? 0 : score >= rules.bMin ? 1 : score >= rules.cMin ? 2 : 3;
  for (const c of caps) g = Math.max(g, c.rule === "serious_list_cap" ? rules.seriousListCap : rules.seriousBreachCap);
  return { grade: GRADES[g]!, score, rulesVersion: rules.version, asOf: day, reasons, caps };
}

export type CreditVerdict = { verified: true; credit: VerifiedCredit } | { verified: false; reason: string };

export async function creditVerdictOf(genesis: Genesis, text: string): Promise<CreditVerdict> {
  try {
    return { verified: true, credit: await verifyCreditReport(genesis, creditReportFromJson(text)) };
  } catch (e) {
    if (e instanceof VerifyError) return { verified: false, reason: e.message };
    return { verified: false, reason: `malformed: ${(e as Error).message}` };
  }
}
