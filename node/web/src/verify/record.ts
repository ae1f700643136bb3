// A signed record's bytes: the envelope (chain, signer, nonce, body) and its signature
// (client/src/record.rs). The verifier decodes what it must judge: the body's kind,
// and the fields of the kinds whose body alone decides who may sign them (key
// bindings, list measures). The rest of a body is the validators' to check.

import { sha256 } from "@noble/hashes/sha2.js";
import { concat, equal, fail, Reader, Writer } from "./bytes.js";
import type { Role } from "./genesis.js";
import { type TraceBody, type TraceKind, TRACE_KINDS, ledgerForm, readTraceBody, writeTraceBody } from "./trace.js";

/** Record kinds in the order of `Body`'s variants (their index in the encoding). */
export const KINDS = [
  "register_entity", "rotate_entity_key", "revoke_entity_key", "commitment", "outcome",
  "list_measure", "repair_application", "repair_decision", "commission", "ship", "receive",
  "transform", "inspect", "recall", "sell", "propose", "vote", "erase", "bind_custody_key",
  "revoke_custody_key",
] as const;
export type Kind = (typeof KINDS)[number];

/** A credit record's body, as the enterprise page reads it. */
export type CreditBody =
  | { kind: "commitment"; subject: string; commitmentKind: string; matter: string; acceptingAgency: string; domain: string; date: number; deadline: number }
  | { kind: "outcome"; commitment: Uint8Array; verdict: string; document: string; date: number }
  | { kind: "list_measure"; subject: string; list: "reward" | "serious_dishonesty"; action: "add" | "remove"; domain: string; basis: Uint8Array[]; reason: string; date: number }
  | { kind: "repair_application"; outcome: Uint8Array; date: number }
  | { kind: "repair_decision"; application: Uint8Array; approved: boolean; reason: string; date: number }
  | { kind: "revoke_entity_key"; uscc: string; reason: string };

const COMMITMENT_KINDS = ["approval_substitute", "voluntary_public", "industry_self_discipline", "credit_repair", "investment_project"];
const SEVERITIES = ["minor", "general", "serious"];

/** A date: days since 1970-01-01 (i32, zigzag). */
function date(r: Reader): number {
  const v = r.varint(32);
  return Number(v & 1n ? -(v >> 1n) - 1n : v >> 1n);
}

function readCreditBody(kind: string, r: Reader): CreditBody | null {
  switch (kind) {
    case "commitment": {
      const subject = r.str();
      const commitmentKind = COMMITMENT_KINDS[r.variant(COMMITMENT_KINDS.length)]!;
      const matter = r.str();
      r.str(); // legal basis
      r.str(); // template version
      const acceptingAgency = r.str();
      const domain = r.str();
      skipContent(r);
      const d = date(r);
      const deadline = date(r);
      if (r.variant(3) === 2) r.seq((r) => r.str()); // disclosure
      r.bool(); // publication consent
      return { kind, subject, commitmentKind, matter, acceptingAgency, domain, date: d, deadline };
    }
    case "outcome": {
      const commitment = r.fixed(32);
      const v = r.variant(3);
      const verdict = v === 0 ? "fulfilled" : v === 1 ? `breached_${SEVERITIES[r.variant(3)]!}` : "not_verifiable";
      r.str(); // method
      r.option((r) => r.fixed(32)); // evidence
      const document = r.str();
      return { kind, commitment, verdict, document, date: date(r) };
    }
    case "list_measure": {
      const subject = r.str();
      const list = r.variant(2) === 0 ? "reward" : "serious_dishonesty";
      const action = r.variant(2) === 0 ? "add" : "remove";
      const domain = r.str();
      const basis = r.seq((r) => r.fixed(32));
      const reason = r.str();
      return { kind, subject, list, action, domain, basis, reason, date: date(r) };
    }
    case "repair_application": {
      const outcome = r.fixed(32);
      skipContent(r);
      r.seq((r) => r.fixed(32));
      return { kind, outcome, date: date(r) };
    }
    case "revoke_entity_key":
      return { kind, uscc: r.str(), reason: r.str() };
    case "repair_decision": {
      const application = r.fixed(32);
      const approved = r.bool();
      const reason = r.str();
      return { kind, application, approved, reason, date: date(r) };
    }
    default:
      return null;
  }
}

/** What the verifier reads of a body. */
export type Binding =
  | { kind: "register_entity"; uscc: string; name: string; key: Uint8Array }
  | { kind: "rotate_entity_key"; uscc: string; key: Uint8Array }
  | { kind: "bind_custody_key"; domain: string; key: Uint8Array };

export interface DecodedRecord {
  /** The record as given (a member may be given amounts opened). */
  bytes: Uint8Array;
  /** The record as the ledger holds it: its Merkle leaf is over these bytes. */
  ledgerBytes: Uint8Array;
  /** The ledger form's envelope: what the signature covers and the id hashes. */
  envelope: Uint8Array;
  signature: Uint8Array;
  /** SHA-256 of the ledger form's envelope bytes. */
  id: Uint8Array;
  chain: Uint8Array;
  signer: Uint8Array;
  nonce: bigint;
  kind: Kind;
  binding: Binding | null;
  /** For a list measure: the credit domain it names. */
  listDomain: string | null;
  /** A trace event's whole body, as given. */
  trace: TraceBody | null;
  /** A credit record's body (commitments, outcomes, list measures, repairs). */
  credit: CreditBody | null;
}

const SIGNATURE_BYTES = 64;

function skipContent(r: Reader): void {
  const v = r.variant(3);
  if (v === 0) r.str();
  else r.fixed(32);
}

/** Records decoded before, by their bytes' identity: a page decodes an answer's records
 * once to check their signatures together, then again to verify it. */
const decoded = new WeakMap<Uint8Array, DecodedRecord>();

export function decodeRecord(bytes: Uint8Array, max: number, what: string): DecodedRecord {
  if (bytes.length > max) fail(`${what}: ${bytes.length} bytes exceed the bound of ${max} bytes`);
  const known = decoded.get(bytes);
  if (known) return known;
  const rec = decodeRecordBytes(bytes, what);
  decoded.set(bytes, rec);
  return rec;
}

function decodeRecordBytes(bytes: Uint8Array, what: string): DecodedRecord {
  if (bytes.length < 64 + 1 + 1 + SIGNATURE_BYTES) fail(`${what}: too short for a signed record`);
  let envelope: Uint8Array = bytes.slice(0, bytes.length - SIGNATURE_BYTES);
  const signature = bytes.slice(bytes.length - SIGNATURE_BYTES);
  const r = new Reader(envelope, what);
  const chain = r.fixed(32);
  const signer = r.fixed(32);
  const nonce = r.varint(64);
  const variant = r.variant(KINDS.length);
  const kind = KINDS[variant]!;
  const bodyAt = r.offset;
  let binding: Binding | null = null;
  let listDomain: string | null = null;
  let trace: TraceBody | null = null;
  let ledgerBytes: Uint8Array = bytes;
  if (TRACE_KINDS.includes(kind)) {
    trace = readTraceBody(kind as TraceKind, r);
    if (r.remaining !== 0) fail(`${what}: ${r.remaining} trailing bytes after the record`);
    const again = new Writer();
    writeTraceBody(again, trace);
    if (!equal(again.bytes(), envelope.slice(bodyAt))) fail(`${what}: non-canonical encoding`);
    const ledger = ledgerForm(trace);
    if (ledger) {
      const w = new Writer();
      writeTraceBody(w, ledger);
      envelope = concat(envelope.slice(0, bodyAt), w.bytes());
      ledgerBytes = concat(envelope, signature);
    }
  }
  let credit: CreditBody | null = null;
  if (["commitment", "outcome", "repair_application", "repair_decision", "revoke_entity_key"].includes(kind)) {
    credit = readCreditBody(kind, r);
    if (r.remaining !== 0) fail(`${what}: ${r.remaining} trailing bytes after the record`);
  }
  switch (kind) {
    case "register_entity": {
      const uscc = r.str();
      const name = r.str();
      r.option(skipContent); // operator
      binding = { kind, uscc, name, key: r.fixed(32) };
      break;
    }
    case "rotate_entity_key":
      binding = { kind, uscc: r.str(), key: r.fixed(32) };
      break;
    case "bind_custody_key":
      binding = { kind, domain: r.str(), key: r.fixed(32) };
      break;
    case "list_measure":
      credit = readCreditBody(kind, r);
      listDomain = credit!.kind === "list_measure" ? credit!.domain : null;
      if (r.remaining !== 0) fail(`${what}: ${r.remaining} trailing bytes after the record`);
      break;
    default:
      break;
  }
  return {
    bytes,
    ledgerBytes,
    envelope,
    signature,
    id: sha256(envelope),
    chain,
    signer,
    nonce,
    kind,
    binding,
    listDomain,
    trace,
    credit,
  };
}

/** The role a member signing this record must hold, where the body alone decides it
 * (client/src/authority.rs, `Authority::member_role`). */
export function memberRoleNeeded(rec: DecodedRecord): Role | null {
  switch (rec.kind) {
    case "register_entity":
    case "bind_custody_key":
    case "revoke_custody_key":
    case "rotate_entity_key":
    case "revoke_entity_key":
      return { kind: "registrar" };
    case "list_measure":
      return { kind: "credit-authority", domain: rec.listDomain! };
    default:
      return null;
  }
}

/** Whether a custody key may sign this kind: a batch's custody events. */
export function custodyKeyMaySign(kind: Kind): boolean {
  return ["commission", "ship", "receive", "transform", "sell", "recall"].includes(kind);
}
