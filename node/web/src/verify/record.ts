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
}

const SIGNATURE_BYTES = 64;

function skipContent(r: Reader): void {
  const v = r.variant(3);
  if (v === 0) r.str();
  else r.fixed(32);
}

export function decodeRecord(bytes: Uint8Array, max: number, what: string): DecodedRecord {
  if (bytes.length > max) fail(`${what}: ${bytes.length} bytes exceed the bound of ${max} bytes`);
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
      r.str(); // subject
      r.variant(2); // list
      r.variant(2); // action
      listDomain = r.str();
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
