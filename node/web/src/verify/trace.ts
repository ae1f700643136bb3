// Trace events' bodies (client/src/record.rs: commission, ship, receive, transform,
// inspect, recall, sell), decoded whole and encoded again: an amount a domain hides may
// reach a member opened (salt and value), while the ledger, the record's id, its
// signature and its Merkle leaf cover the sealed form (client/src/hidden.rs), which
// only a re-encoding gives. Parties, times and batch states are here too.

import { sha256 } from "@noble/hashes/sha2.js";
import { fail, Reader, taggedHash, toHex, Writer } from "./bytes.js";

export type Amount =
  | { form: "clear"; value: bigint }
  | { form: "opened"; salt: Uint8Array; value: bigint }
  | { form: "sealed"; commitment: Uint8Array };

export interface Quantity {
  amount: Amount;
  uom: string;
}

export type Party = { form: "enterprise"; uscc: string } | { form: "custody"; key: Uint8Array };

export interface EventTime {
  unixMs: bigint;
  offsetMinutes: number;
}

export interface Product {
  name: string;
  gtin: string | null;
  drugCode: string | null;
}

export type TraceBody =
  | { kind: "commission"; batch: string; domain: string; product: Product; lot: string; quantity: Quantity; origin: string; time: EventTime }
  | { kind: "ship"; batch: string; quantity: Quantity; to: Party; fromLocation: string; toLocation: string; time: EventTime }
  | { kind: "receive"; shipment: Uint8Array; location: string; time: EventTime }
  | {
      kind: "transform";
      inputs: { batch: string; quantity: Quantity }[];
      outputs: { batch: string; domain: string; product: Product; lot: string; quantity: Quantity }[];
      location: string;
      time: EventTime;
    }
  | { kind: "inspect"; batch: string; result: "pass" | "fail"; standard: string; report: Uint8Array | null; location: string; time: EventTime }
  | { kind: "recall"; batch: string; reason: string; time: EventTime }
  | { kind: "sell"; batch: string; quantity: Quantity; saleKind: "retail_sold" | "dispensed"; location: string; time: EventTime };

export type TraceKind = TraceBody["kind"];
export const TRACE_KINDS: readonly string[] = ["commission", "ship", "receive", "transform", "inspect", "recall", "sell"];

// ---- parties and amounts ---------------------------------------------------------

export function partyName(p: Party): string {
  return p.form === "enterprise" ? p.uscc : `custody:${toHex(p.key)}`;
}

export function sameParty(a: Party, b: Party): boolean {
  return partyName(a) === partyName(b);
}

/** The amount if it is here (in clear or opened), else null. */
export function amountValue(a: Amount): bigint | null {
  return a.form === "sealed" ? null : a.value;
}

export function amountClear(a: Amount): bigint | null {
  return a.form === "clear" ? a.value : null;
}

/** The commitment the ledger holds for an opened amount. */
export function commitment(salt: Uint8Array, value: bigint): Uint8Array {
  return taggedHash("xinlian/hidden-amount/v1", new Writer().fixed(salt).varint(value).bytes());
}

function sealed(a: Amount): Amount {
  return a.form === "opened" ? { form: "sealed", commitment: commitment(a.salt, a.value) } : a;
}

/** Every amount a body states, with the batch it is of. */
export function quantities(b: TraceBody): { batch: string; quantity: Quantity }[] {
  switch (b.kind) {
    case "commission":
    case "ship":
    case "sell":
      return [{ batch: b.batch, quantity: b.quantity }];
    case "transform":
      return [...b.inputs, ...b.outputs];
    default:
      return [];
  }
}

/** The body as the ledger holds it: every opened amount replaced by its commitment. */
export function ledgerForm(b: TraceBody): TraceBody | null {
  if (!quantities(b).some((q) => q.quantity.amount.form === "opened")) return null;
  const q = (x: Quantity): Quantity => ({ amount: sealed(x.amount), uom: x.uom });
  switch (b.kind) {
    case "commission":
    case "ship":
    case "sell":
      return { ...b, quantity: q(b.quantity) };
    case "transform":
      return {
        ...b,
        inputs: b.inputs.map((i) => ({ ...i, quantity: q(i.quantity) })),
        outputs: b.outputs.map((o) => ({ ...o, quantity: q(o.quantity) })),
      };
    default:
      return null;
  }
}

// ---- decoding --------------------------------------------------------------------

function amount(r: Reader): Amount {
  switch (r.variant(3)) {
    case 0:
      return { form: "clear", value: r.varint(64) };
    case 1:
      return { form: "opened", salt: r.fixed(32), value: r.varint(64) };
    default:
      return { form: "sealed", commitment: r.fixed(32) };
  }
}

function quantity(r: Reader): Quantity {
  return { amount: amount(r), uom: r.str() };
}

export function readParty(r: Reader): Party {
  return r.variant(2) === 0 ? { form: "enterprise", uscc: r.str() } : { form: "custody", key: r.fixed(32) };
}

function zigzag(v: bigint): bigint {
  return v & 1n ? -(v >> 1n) - 1n : v >> 1n;
}

function time(r: Reader): EventTime {
  const unixMs = zigzag(r.varint(64));
  const offset = Number(zigzag(r.varint(16)));
  return { unixMs, offsetMinutes: offset };
}

function product(r: Reader): Product {
  return { name: r.str(), gtin: r.option((r) => r.str()), drugCode: r.option((r) => r.str()) };
}

/** The body of a trace kind, read from the envelope's reader at the body's fields. */
export function readTraceBody(kind: TraceKind, r: Reader): TraceBody {
  switch (kind) {
    case "commission":
      return { kind, batch: r.str(), domain: r.str(), product: product(r), lot: r.str(), quantity: quantity(r), origin: r.str(), time: time(r) };
    case "ship":
      return { kind, batch: r.str(), quantity: quantity(r), to: readParty(r), fromLocation: r.str(), toLocation: r.str(), time: time(r) };
    case "receive":
      return { kind, shipment: r.fixed(32), location: r.str(), time: time(r) };
    case "transform":
      return {
        kind,
        inputs: r.seq((r) => ({ batch: r.str(), quantity: quantity(r) })),
        outputs: r.seq((r) => ({ batch: r.str(), domain: r.str(), product: product(r), lot: r.str(), quantity: quantity(r) })),
        location: r.str(),
        time: time(r),
      };
    case "inspect":
      return {
        kind,
        batch: r.str(),
        result: r.variant(2) === 0 ? "pass" : "fail",
        standard: r.str(),
        report: r.option((r) => r.fixed(32)),
        location: r.str(),
        time: time(r),
      };
    case "recall":
      return { kind, batch: r.str(), reason: r.str(), time: time(r) };
    case "sell":
      return { kind, batch: r.str(), quantity: quantity(r), saleKind: r.variant(2) === 0 ? "retail_sold" : "dispensed", location: r.str(), time: time(r) };
  }
}

// ---- encoding --------------------------------------------------------------------

function writeAmount(w: Writer, a: Amount): void {
  if (a.form === "clear") w.varint(0).varint(a.value);
  else if (a.form === "opened") w.varint(1).fixed(a.salt).varint(a.value);
  else w.varint(2).fixed(a.commitment);
}

function writeQuantity(w: Writer, q: Quantity): void {
  writeAmount(w, q.amount);
  w.str(q.uom);
}

export function writeParty(w: Writer, p: Party): void {
  if (p.form === "enterprise") w.varint(0).str(p.uscc);
  else w.varint(1).fixed(p.key);
}

function writeTime(w: Writer, t: EventTime): void {
  w.signed(t.unixMs).signed(t.offsetMinutes);
}

function writeProduct(w: Writer, p: Product): void {
  w.str(p.name).option(p.gtin, (w, s) => w.str(s)).option(p.drugCode, (w, s) => w.str(s));
}

export function writeTraceBody(w: Writer, b: TraceBody): void {
  switch (b.kind) {
    case "commission":
      w.str(b.batch).str(b.domain);
      writeProduct(w, b.product);
      w.str(b.lot);
      writeQuantity(w, b.quantity);
      w.str(b.origin);
      return writeTime(w, b.time);
    case "ship":
      w.str(b.batch);
      writeQuantity(w, b.quantity);
      writeParty(w, b.to);
      w.str(b.fromLocation).str(b.toLocation);
      return writeTime(w, b.time);
    case "receive":
      w.fixed(b.shipment).str(b.location);
      return writeTime(w, b.time);
    case "transform":
      w.seq(b.inputs, (w, i) => {
        w.str(i.batch);
        writeQuantity(w, i.quantity);
      });
      w.seq(b.outputs, (w, o) => {
        w.str(o.batch).str(o.domain);
        writeProduct(w, o.product);
        w.str(o.lot);
        writeQuantity(w, o.quantity);
      });
      w.str(b.location);
      return writeTime(w, b.time);
    case "inspect":
      w.str(b.batch).varint(b.result === "pass" ? 0 : 1).str(b.standard);
      w.option(b.report, (w, h) => w.fixed(h)).str(b.location);
      return writeTime(w, b.time);
    case "recall":
      w.str(b.batch).str(b.reason);
      return writeTime(w, b.time);
    case "sell":
      w.str(b.batch);
      writeQuantity(w, b.quantity);
      w.varint(b.saleKind === "retail_sold" ? 0 : 1).str(b.location);
      return writeTime(w, b.time);
  }
}

// ---- batch states ------------------------------------------------------------------

export interface BatchState {
  batch: string;
  domain: string;
  product: Product;
  lot: string;
  uom: string;
  createdAmount: bigint | null;
  createdBy: Party;
  origin: Uint8Array;
  parents: string[];
  recalled: Uint8Array | null;
  events: number;
  lastEvent: Uint8Array;
  eventChain: Uint8Array;
}

const BATCH_STATE_BYTES_MAX = 64 << 10;

function writeBatchState(w: Writer, s: BatchState): void {
  w.str(s.batch).str(s.domain);
  writeProduct(w, s.product);
  w.str(s.lot).str(s.uom).option(s.createdAmount, (w, v) => w.varint(v));
  writeParty(w, s.createdBy);
  w.fixed(s.origin).seq(s.parents, (w, p) => w.str(p)).option(s.recalled, (w, h) => w.fixed(h));
  w.varint(s.events).fixed(s.lastEvent).fixed(s.eventChain);
}

/** A batch's canonical state, as the batch index commits to it. */
export function decodeBatchState(bytes: Uint8Array, what: string): BatchState {
  if (bytes.length > BATCH_STATE_BYTES_MAX) fail(`${what}: ${bytes.length} bytes exceed ${BATCH_STATE_BYTES_MAX}`);
  const r = new Reader(bytes, what);
  const s: BatchState = {
    batch: r.str(),
    domain: r.str(),
    product: product(r),
    lot: r.str(),
    uom: r.str(),
    createdAmount: r.option((r) => r.varint(64)),
    createdBy: readParty(r),
    origin: r.fixed(32),
    parents: r.seq((r) => r.str()),
    recalled: r.option((r) => r.fixed(32)),
    events: r.number(32),
    lastEvent: r.fixed(32),
    eventChain: r.fixed(32),
  };
  if (r.remaining !== 0) fail(`${what}: ${r.remaining} trailing bytes after the value`);
  const again = new Writer();
  writeBatchState(again, s);
  if (toHex(again.bytes()) !== toHex(bytes)) fail(`${what}: non-canonical encoding`);
  return s;
}

/** The event chain after `prev` is extended by `event`; a batch's starts at zeros. */
export function nextEventChain(prev: Uint8Array, event: Uint8Array): Uint8Array {
  return taggedHash("xinlian/batch-events/v1", new Writer().fixed(prev).fixed(event).bytes());
}

/** A batch's key in the batch index. */
export function batchIndexKey(batch: string): Uint8Array {
  return sha256(new TextEncoder().encode(batch));
}
