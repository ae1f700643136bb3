// The light client, a second implementation of docs/verification.md beside
// client/src/proof.rs: from a genesis file alone it checks rosters and their changes,
// certificates, a record's bytes, signature and inclusion, and its signer's authority.
// It trusts nothing the node says; every failure names what failed.

import { equal, fail, fromHex, taggedHash, toHex, VerifyError, Writer } from "./bytes.js";
import { verifyIn } from "./ed25519.js";
import {
  type Genesis, type Member, type Roster, type Validator, hasRole, roleName, rosterFromJson,
  rosterHash, rosterProblem, validatorSet, validatorSetHash,
} from "./genesis.js";
import { type Json, arr, field, hex32, hex64, obj, parseDocument, str, uint } from "./json.js";
import { leafHash, verifyConsistency, verifyInclusion } from "./merkle.js";
import { type DecodedRecord, custodyKeyMaySign, decodeRecord, memberRoleNeeded } from "./record.js";

export const BUNDLE_FORMAT = "xinlian-proof/v1";
const KEY_BINDINGS_MAX = 16;
const ROSTER_CHANGES_MAX = 4096;

export interface Header {
  chain: Uint8Array;
  height: number;
  parent: Uint8Array;
  timeMs: number;
  proposer: Uint8Array;
  recordsRoot: Uint8Array;
  recordsCount: number;
  ledgerRoot: Uint8Array;
  ledgerSize: number;
  stateHash: Uint8Array;
  traceRoot: Uint8Array;
  creditRoot: Uint8Array;
  validatorsHash: Uint8Array;
  nextRosterHash: Uint8Array;
}

export interface Certificate {
  height: number;
  round: number;
  block: Uint8Array;
  signatures: { validator: number; signature: Uint8Array }[];
}

export interface Checkpoint {
  header: Header;
  certificate: Certificate;
}

export interface LedgerEntry {
  index: number;
  record: Uint8Array;
  inclusion: Uint8Array[];
}

export interface RosterChange {
  height: number;
  roster: Roster;
  announcedBy: Checkpoint;
}

export interface RecordProof {
  entry: LedgerEntry;
  checkpoint: Checkpoint;
  keyBindings: LedgerEntry[];
}

export interface Bundle {
  format: string;
  chain: Uint8Array;
  rosterChanges: RosterChange[];
  proof: RecordProof;
}

export type SignerAuthority =
  | { type: "member"; id: string; roles: string[] }
  | {
      type: "enterprise";
      uscc: string;
      /** The name its registration gives, where the bindings reach the registration. */
      name: string | null;
      boundBy: string[];
      registrar: string;
    }
  | { type: "custody"; domain: string; boundBy: string; registrar: string };

export interface VerifiedRecord {
  id: string;
  kind: string;
  record: DecodedRecord;
  ledgerIndex: number;
  finalAt: number;
  blockHeight: number | null;
  checkpointHash: string;
  signer: SignerAuthority;
}

// ---- reading answers ---------------------------------------------------------------

export function headerFromJson(v: Json | undefined, what: string): Header {
  const o = obj(v, what);
  const h = (k: string) => hex32(field(o, k, what), `${what}.${k}`);
  const n = (k: string, ty: "u32" | "u64") => uint(field(o, k, what), `${what}.${k}`, ty);
  const t = field(o, "time_ms", what);
  if (typeof t !== "number" || !Number.isSafeInteger(t)) fail(`${what}.time_ms: expected an i64`);
  return {
    chain: h("chain"),
    height: n("height", "u64"),
    parent: h("parent"),
    timeMs: t,
    proposer: h("proposer"),
    recordsRoot: h("records_root"),
    recordsCount: n("records_count", "u32"),
    ledgerRoot: h("ledger_root"),
    ledgerSize: n("ledger_size", "u64"),
    stateHash: h("state_hash"),
    traceRoot: h("trace_root"),
    creditRoot: h("credit_root"),
    validatorsHash: h("validators_hash"),
    nextRosterHash: h("next_roster_hash"),
  };
}

export function checkpointFromJson(v: Json | undefined, what: string): Checkpoint {
  const o = obj(v, what);
  const c = obj(field(o, "certificate", what), `${what}.certificate`);
  const cw = `${what}.certificate`;
  return {
    header: headerFromJson(field(o, "header", what), `${what}.header`),
    certificate: {
      height: uint(field(c, "height", cw), `${cw}.height`, "u64"),
      round: uint(field(c, "round", cw), `${cw}.round`, "u32"),
      block: hex32(field(c, "block", cw), `${cw}.block`),
      signatures: arr(field(c, "signatures", cw), `${cw}.signatures`).map((s, i) => {
        const w = `${cw}.signatures[${i}]`;
        const so = obj(s, w);
        return {
          validator: uint(field(so, "validator", w), `${w}.validator`, "u16"),
          signature: hex64(field(so, "signature", w), `${w}.signature`),
        };
      }),
    },
  };
}

export function entryFromJson(v: Json | undefined, what: string): LedgerEntry {
  const o = obj(v, what);
  return {
    index: uint(field(o, "index", what), `${what}.index`, "u64"),
    record: fromHex(str(field(o, "record", what), `${what}.record`), `${what}.record`),
    inclusion: arr(field(o, "inclusion", what), `${what}.inclusion`).map((h, i) => hex32(h, `${what}.inclusion[${i}]`)),
  };
}

export function recordProofFromJson(v: Json | undefined, what: string): RecordProof {
  const o = obj(v, what);
  return {
    entry: entryFromJson(field(o, "entry", what), `${what}.entry`),
    checkpoint: checkpointFromJson(field(o, "checkpoint", what), `${what}.checkpoint`),
    keyBindings: arr(field(o, "key_bindings", what), `${what}.key_bindings`).map((e, i) =>
      entryFromJson(e, `${what}.key_bindings[${i}]`),
    ),
  };
}

export function rosterChangesFromJson(v: Json | undefined, what: string): RosterChange[] {
  return arr(v, what).map((c, i) => {
    const w = `${what}[${i}]`;
    const o = obj(c, w);
    return {
      height: uint(field(o, "height", w), `${w}.height`, "u64"),
      roster: rosterFromJson(field(o, "roster", w), `${w}.roster`),
      announcedBy: checkpointFromJson(field(o, "announced_by", w), `${w}.announced_by`),
    };
  });
}

export function bundleFromJson(textJson: string): Bundle {
  const o = obj(parseDocument(textJson, "bundle"), "bundle");
  return {
    format: str(field(o, "format", "bundle"), "bundle.format"),
    chain: hex32(field(o, "chain", "bundle"), "bundle.chain"),
    rosterChanges: rosterChangesFromJson(field(o, "roster_changes", "bundle"), "bundle.roster_changes"),
    proof: recordProofFromJson(field(o, "proof", "bundle"), "bundle.proof"),
  };
}

// ---- hashing -------------------------------------------------------------------------

export function headerHash(h: Header): Uint8Array {
  const w = new Writer().fixed(h.chain).varint(h.height).fixed(h.parent).signed(h.timeMs);
  w.fixed(h.proposer).fixed(h.recordsRoot).varint(h.recordsCount).fixed(h.ledgerRoot);
  w.varint(h.ledgerSize).fixed(h.stateHash).fixed(h.traceRoot).fixed(h.creditRoot);
  w.fixed(h.validatorsHash).fixed(h.nextRosterHash);
  return taggedHash("xinlian/header/v1", w.bytes());
}

/** That `cert` finalises `header` under `validators`: more than two thirds of the power
 * precommitted to this header's hash (client/src/block.rs, `verify_certificate`). */
export function verifyCertificate(header: Header, cert: Certificate, validators: Validator[]): void {
  if (cert.height !== header.height) fail(`certificate is for height ${cert.height}, header is at ${header.height}`);
  const hash = headerHash(header);
  if (!equal(cert.block, hash)) fail(`certificate is for block ${toHex(cert.block)}, header hashes to ${toHex(hash)}`);
  const setHash = validatorSetHash(validators);
  if (!equal(header.validatorsHash, setHash))
    fail(`header names validator set ${toHex(header.validatorsHash)}, the set in force is ${toHex(setHash)}`);
  let signed = 0n;
  let last = -1;
  for (const cs of cert.signatures) {
    const v = validators[cs.validator];
    if (v === undefined || cs.validator <= last)
      fail(`validator index ${cs.validator} is not in the set, or indices are not strictly increasing`);
    last = cs.validator;
    signed += BigInt(v.power);
  }
  const total = validators.reduce((t, v) => t + BigInt(v.power), 0n);
  if (signed * 3n <= total * 2n) fail(`signed voting power ${signed} of ${total} is not more than two thirds`);
  for (const cs of cert.signatures) {
    const v = validators[cs.validator]!;
    const vote = new Writer().fixed(header.chain).varint(cert.height).varint(cert.round);
    vote.fixed(cert.block).fixed(v.key);
    if (!verifyIn("precommit", v.key, vote.bytes(), cs.signature))
      fail(`precommit signature of validator ${cs.validator} (${toHex(v.key)}) does not verify`);
  }
}

// ---- the client ----------------------------------------------------------------------

interface Epoch {
  height: number;
  firstIndex: number;
  roster: Roster;
  validators: Validator[];
  rosterHash: Uint8Array;
}

export class LightClient {
  private readonly epochs: Epoch[];
  private trustedCp: Checkpoint | null = null;

  constructor(private readonly genesis: Genesis) {
    this.epochs = [epochOf(1, 0, genesis)];
  }

  get chain(): Uint8Array {
    return this.genesis.hash;
  }

  /** The most bytes a record may have on this chain (the genesis block bound). */
  get recordBytesMax(): number {
    return this.genesis.policy.blockBytesMax;
  }

  get trusted(): Checkpoint | null {
    return this.trustedCp;
  }

  /** The roster in force at `height`, as this client has followed them. */
  rosterAt(height: number): Roster {
    return this.epochAt(height).roster;
  }

  /** The roster in force when the record at ledger index `index` was appended. */
  rosterAtIndex(index: number): Roster {
    return this.rosterOfIndex(index);
  }

  /** The validators in force at `height`, as this client has followed them. */
  validatorsAt(height: number): Validator[] {
    return this.epochAt(height).validators;
  }

  private epochAt(height: number): Epoch {
    let e = this.epochs[0]!;
    for (const x of this.epochs) if (x.height <= height) e = x;
    return e;
  }

  private rosterOfIndex(index: number): Roster {
    let e = this.epochs[0]!;
    for (const x of this.epochs) if (x.firstIndex <= index) e = x;
    return e.roster;
  }

  memberAtIndex(key: Uint8Array, index: number): Member | undefined {
    return this.rosterOfIndex(index).members.find((m) => equal(m.signingKey, key));
  }

  /** Follows roster changes in order, each announced by a header the set before it
   * certified, naming the new roster's hash. */
  acceptChanges(changes: RosterChange[]): void {
    if (changes.length > ROSTER_CHANGES_MAX)
      fail(`roster change at height 0: more than ${ROSTER_CHANGES_MAX} changes`);
    for (const c of changes) {
      const bad: (reason: string) => never = (reason) => fail(`roster change at height ${c.height}: ${reason}`);
      const hash = rosterHash(c.roster);
      const known = this.epochs.find((e) => e.height === c.height);
      if (known) {
        if (equal(known.rosterHash, hash)) continue;
        bad("conflicts with a roster already verified");
      }
      const last = this.epochs[this.epochs.length - 1]!.height;
      if (c.height <= last) bad(`out of order: changes up to height ${last} are already verified`);
      if (this.trustedCp && c.height <= this.trustedCp.header.height + 1)
        bad(`the trusted header at height ${this.trustedCp.header.height} contradicts it`);
      const problem = rosterProblem(c.roster);
      if (problem) bad(`the roster is not valid: ${problem}`);
      const hd = c.announcedBy.header;
      if (hd.height + 1 !== c.height) bad(`announced by a header at height ${hd.height}, not ${c.height - 1}`);
      this.checkCertified(c.announcedBy);
      if (!equal(hd.nextRosterHash, hash))
        bad(`the announcing header names next roster ${toHex(hd.nextRosterHash)}, this roster hashes to ${toHex(hash)}`);
      this.epochs.push(epochOf(c.height, hd.ledgerSize, c.roster));
    }
  }

  private checkCertified(cp: Checkpoint): void {
    if (!equal(cp.header.chain, this.chain))
      fail(`header is for chain ${toHex(cp.header.chain)}, but the genesis is chain ${toHex(this.chain)}`);
    try {
      verifyCertificate(cp.header, cp.certificate, this.epochAt(cp.header.height).validators);
    } catch (e) {
      if (e instanceof VerifyError) fail(`header at height ${cp.header.height} is not final: ${e.message}`);
      throw e;
    }
  }

  /** The header's certificate, and that it names the roster this client holds for the
   * next height (else the answer left out a roster change). */
  checkCheckpoint(cp: Checkpoint): void {
    this.checkCertified(cp);
    const next = cp.header.height + 1;
    const held = this.epochAt(next).rosterHash;
    if (!equal(cp.header.nextRosterHash, held))
      fail(
        `header ${cp.header.height} names roster ${toHex(cp.header.nextRosterHash)} as the one in force at height ${next}, but the roster this client holds there hashes to ${toHex(held)}: a roster change is missing from the answer`,
      );
  }

  /** Moves the trusted header to `cp`, along a consistency proof from the one held. */
  advance(cp: Checkpoint, consistency: { first: number; second: number; proof: Uint8Array[] } | null): void {
    this.checkCheckpoint(cp);
    const old = this.trustedCp;
    if (old) {
      const [o, n] = [old.header, cp.header];
      const bad: (reason: string) => never = (reason) =>
        fail(`ledger of header ${n.height} (size ${n.ledgerSize}) does not extend the trusted ledger of header ${o.height} (size ${o.ledgerSize}): ${reason}`);
      if (n.height === o.height) {
        if (equal(headerHash(n), headerHash(o))) return;
        bad("two different final headers at one height");
      }
      const [earlier, later] = n.height > o.height ? [o, n] : [n, o];
      if (later.ledgerSize < earlier.ledgerSize) bad("the later header has the smaller ledger");
      if (earlier.ledgerSize > 0) {
        if (!consistency) bad("no consistency proof given");
        if (consistency.first !== earlier.ledgerSize || consistency.second !== later.ledgerSize)
          bad(`the proof is between sizes ${consistency.first} and ${consistency.second}`);
        try {
          verifyConsistency(BigInt(earlier.ledgerSize), BigInt(later.ledgerSize), earlier.ledgerRoot, later.ledgerRoot, consistency.proof);
        } catch (e) {
          bad((e as Error).message);
        }
      }
      if (n.height < o.height) return;
    }
    this.trustedCp = cp;
  }

  /** A ledger entry's bytes, chain, signature and inclusion under `header`. */
  verifyEntry(e: LedgerEntry, header: Header): DecodedRecord {
    const rec = this.verifyEntryUnsigned(e, header);
    checkSignature(rec);
    return rec;
  }

  /** A ledger entry's bytes, chain and inclusion; the signature is the caller's. */
  verifyEntryUnsigned(e: LedgerEntry, header: Header): DecodedRecord {
    const rec = decodeRecord(e.record, this.genesis.policy.blockBytesMax, `record bytes at ledger index ${e.index}`);
    const id = toHex(rec.id);
    if (!equal(rec.chain, this.chain))
      fail(`record ${id} is not valid: it is for chain ${toHex(rec.chain)}, not ${toHex(this.chain)}`);
    try {
      verifyInclusion(leafHash(rec.ledgerBytes), BigInt(e.index), BigInt(header.ledgerSize), e.inclusion, header.ledgerRoot);
    } catch (x) {
      fail(`record ${id} is not at ledger index ${e.index} of header ${header.height}: ${(x as Error).message}`);
    }
    return rec;
  }

  verifyRecord(proof: RecordProof): VerifiedRecord {
    this.checkCheckpoint(proof.checkpoint);
    const header = proof.checkpoint.header;
    const rec = this.verifyEntry(proof.entry, header);
    const signer = this.signerAuthority(rec, proof, header);
    const firstOfBlock = header.ledgerSize - header.recordsCount;
    return {
      id: toHex(rec.id),
      kind: rec.kind,
      record: rec,
      ledgerIndex: proof.entry.index,
      finalAt: header.height,
      blockHeight: proof.entry.index >= firstOfBlock ? header.height : null,
      checkpointHash: toHex(headerHash(header)),
      signer,
    };
  }

  private signerAuthority(rec: DecodedRecord, proof: RecordProof, header: Header): SignerAuthority {
    const bad = authorityFailure(rec);
    if (this.memberAtIndex(rec.signer, proof.entry.index)) {
      if (proof.keyBindings.length > 0) bad("signed by a member but the proof cites key bindings");
      return this.memberAuthority(rec, proof.entry.index);
    }
    const authority = this.bindingsAuthority(rec.signer, proof.keyBindings, header, bad);
    checkBoundBefore(proof.keyBindings, proof.entry.index, bad);
    checkCustodySigns(authority, rec, bad);
    return authority;
  }

  /** A member's authority for a record at ledger index `index`: its roles then, and
   * the role the body needs where the body alone decides it. */
  memberAuthority(rec: DecodedRecord, index: number): SignerAuthority {
    const member = this.memberAtIndex(rec.signer, index) ?? fail("called for a member's key");
    const role = memberRoleNeeded(rec);
    if (role && !hasRole(member, role))
      authorityFailure(rec)(`a ${rec.kind} record needs the role '${roleName(role)}', which member '${member.id}' lacks`);
    return { type: "member", id: member.id, roles: member.roles.map(roleName) };
  }

  /** The bindings of an enterprise or custody key back to a registrar's record: the
   * first binds `signer`, each later one the key that signed the one before. */
  bindingsAuthority(
    signer: Uint8Array,
    bindings: LedgerEntry[],
    header: Header,
    bad: (reason: string) => never,
  ): SignerAuthority {
    if (bindings.length === 0) bad(`key ${toHex(signer)} is not a member's and the proof cites no binding for it`);
    if (bindings.length > KEY_BINDINGS_MAX) bad(`more than ${KEY_BINDINGS_MAX} key bindings`);
    let [key, before, uscc] = [signer, Number.POSITIVE_INFINITY, null as string | null];
    let name: string | null = null;
    const boundBy: string[] = [];
    for (const b of bindings) {
      if (b.index >= before)
        bad(`binding at ledger index ${b.index} does not precede the binding it authorises (index ${before})`);
      const br = this.verifyEntry(b, header);
      const id = toHex(br.id);
      const by = this.memberAtIndex(br.signer, b.index);
      const binding = br.binding;
      if (binding === null) bad(`record ${id} is a ${br.kind}, not a key binding`);
      if (binding.kind === "bind_custody_key") {
        if (!equal(binding.key, key) || bindings.length !== 1)
          bad(`custody key binding ${id} must be the one binding cited, of the signer's key`);
        if (!by || !hasRole(by, { kind: "registrar" }))
          bad(`custody key binding ${id} is not signed by a consortium registrar`);
        return { type: "custody", domain: binding.domain, boundBy: id, registrar: by.id };
      }
      if (!equal(binding.key, key)) bad(`record ${id} binds key ${toHex(binding.key)}, not ${toHex(key)}`);
      if (uscc !== null && uscc !== binding.uscc) bad(`record ${id} binds a key of ${binding.uscc}, not of ${uscc}`);
      uscc = binding.uscc;
      if (binding.kind === "register_entity") name = binding.name;
      boundBy.push(id);
      if (by) {
        if (!hasRole(by, { kind: "registrar" })) bad(`binding ${id} is signed by member '${by.id}', who is not a registrar`);
        if (boundBy.length !== bindings.length) bad("key bindings continue past a registrar's");
        return { type: "enterprise", uscc: binding.uscc, name, boundBy, registrar: by.id };
      }
      if (binding.kind === "register_entity") bad(`registration ${id} is not signed by a consortium registrar`);
      [key, before] = [br.signer, b.index];
    }
    return bad(`the bindings end at key ${toHex(key)}, which no registrar bound`);
  }
}

export function checkSignature(rec: DecodedRecord): void {
  if (!verifyIn("record", rec.signer, rec.envelope, rec.signature))
    fail(`record ${toHex(rec.id)} is not valid: signature by ${toHex(rec.signer)} does not verify`);
}

export function authorityFailure(rec: DecodedRecord): (reason: string) => never {
  return (reason) => fail(`signer of record ${toHex(rec.id)} has no proven authority: ${reason}`);
}

/** A key binding authorises only records after it on the ledger. */
export function checkBoundBefore(bindings: LedgerEntry[], index: number, bad: (reason: string) => never): void {
  const first = bindings[0];
  if (first && first.index >= index)
    bad(`binding at ledger index ${first.index} does not precede the record it authorises (index ${index})`);
}

/** A custody key signs custody events only. */
export function checkCustodySigns(a: SignerAuthority, rec: DecodedRecord, bad: (reason: string) => never): void {
  if (a.type === "custody" && !custodyKeyMaySign(rec.kind))
    bad(`a ${rec.kind} signed by the custody key for domain ${a.domain}, which signs custody events only`);
}

function epochOf(height: number, firstIndex: number, roster: Roster): Epoch {
  return { height, firstIndex, roster, validators: validatorSet(roster), rosterHash: rosterHash(roster) };
}

/** Checks an offline bundle as a fresh client holding only `genesis`. */
export function verifyBundle(genesis: Genesis, bundle: Bundle): VerifiedRecord {
  if (bundle.format !== BUNDLE_FORMAT) fail(`bundle format '${bundle.format}' is not ${BUNDLE_FORMAT}`);
  if (!equal(bundle.chain, genesis.hash))
    fail(`bundle is for chain ${toHex(bundle.chain)}, but the genesis is chain ${toHex(genesis.hash)}`);
  const client = new LightClient(genesis);
  client.acceptChanges(bundle.rosterChanges);
  return client.verifyRecord(bundle.proof);
}

export type Verdict = { verified: true; record: VerifiedRecord } | { verified: false; reason: string };

/** Reads and checks a bundle's text; any failure is a verdict, never an exception. */
export function verdictOf(genesis: Genesis, bundleText: string): Verdict {
  try {
    return { verified: true, record: verifyBundle(genesis, bundleFromJson(bundleText)) };
  } catch (e) {
    if (e instanceof VerifyError) return { verified: false, reason: e.message };
    return { verified: false, reason: `malformed: ${(e as Error).message}` };
  }
}
