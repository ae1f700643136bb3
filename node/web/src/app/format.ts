// How verified values read on a page: times at the offset where they happened,
// amounts with their unit, parties with the name their registration gives.

import type { EventTime, Party } from "../verify/trace.js";
import { partyName } from "../verify/trace.js";

export function eventTime(t: EventTime): string {
  const local = new Date(Number(t.unixMs) + t.offsetMinutes * 60_000).toISOString();
  const sign = t.offsetMinutes < 0 ? "-" : "+";
  const off = Math.abs(t.offsetMinutes);
  const hh = String(Math.floor(off / 60)).padStart(2, "0");
  const mm = String(off % 60).padStart(2, "0");
  return `${local.slice(0, 10)} ${local.slice(11, 16)} UTC${sign}${hh}:${mm}`;
}

export function amount(a: bigint | null, uom: string, hidden: string): string {
  return a === null ? hidden : `${a.toString()} ${uom}`;
}

/** A party as people read it: the registered name where it is proven, and the code. */
export function party(p: Party, names: Map<string, string>): string {
  const id = partyName(p);
  if (p.form === "custody") return `${id.slice(0, 8 + 16)}…`;
  const name = names.get(id);
  return name ? `${name} (${id})` : id;
}
