// The genesis file and rosters: read from TOML (the file a consortium hands out) or
// JSON (a roster change inside an answer), checked by the roster rules, and encoded
// canonically, since their hashes are the chain id and `next_roster_hash`
// (genesis/src/model.rs, roster.rs, grading.rs, validators.rs).

import { parse as parseToml } from "smol-toml";
import { fail, fromHex, taggedHash, toHex, Writer } from "./bytes.js";
import { type Json, type Obj, arr, bool, field, int, obj, only, str, uint } from "./json.js";
import { bindable } from "./ed25519.js";

export type Role =
  | { kind: "validator" }
  | { kind: "observer" }
  | { kind: "registrar" }
  | { kind: "credit-authority"; domain: string }
  | { kind: "trace-authority"; domain: string };

const ROLE_ORDER = ["validator", "observer", "registrar", "credit-authority", "trace-authority"];

export function roleName(r: Role): string {
  return "domain" in r ? `${r.kind}:${r.domain}` : r.kind;
}

export function sameRole(a: Role, b: Role): boolean {
  return roleName(a) === roleName(b);
}

export interface Member {
  id: string;
  name: string;
  region: string;
  roles: Role[];
  votingPower: number;
  nodeKey: Uint8Array | null;
  signingKey: Uint8Array;
}

export interface Tier {
  minDays: number;
  maxDays: number;
  repairable: boolean;
  published: boolean;
}

export interface Weight {
  points: number;
  windowDays: number;
}

const GRADES = ["A", "B", "C", "D"] as const;

export interface Grading {
  version: number;
  base: number;
  aMin: number;
  bMin: number;
  cMin: number;
  fulfilled: Weight;
  fulfilledCap: number;
  breachMinor: Weight;
  breachGeneral: Weight;
  breachSerious: Weight;
  repairedPercent: number;
  rewardListPoints: number;
  rewardListDays: number;
  seriousListDays: number;
  seriousListCap: number; // index in GRADES
  seriousBreachCap: number;
  domainPercent: { domain: string; percent: number }[];
}

const TRACE_FIELDS = ["quantity", "counterparty"] as const;

export interface Policy {
  blockIntervalMs: number;
  blockRecordsMax: number;
  blockBytesMax: number;
  recordBytesMax: number;
  blockTimeDriftMsMax: number;
  publication: {
    minor: Tier;
    general: Tier;
    serious: Tier;
    domains: { domain: string; minor: Tier; general: Tier; serious: Tier }[];
  };
  grading: Grading;
  trace: { domain: string; hide: number[] }[]; // indices in TRACE_FIELDS
}

export interface Roster {
  members: Member[];
  policy: Policy;
}

export interface Genesis extends Roster {
  chainId: string;
  genesisTimeMs: number;
  /** The chain id: the tagged hash of the canonical genesis. */
  hash: Uint8Array;
}

export interface Validator {
  member: string;
  key: Uint8Array;
  power: number;
}

/** The grading rules a genesis without a `[policy.grading]` table has (Grading::default). */
function defaultGrading(): Grading {
  const w = (points: number, windowDays: number) => ({ points, windowDays });
  return {
    version: 1,
    base: 80,
    aMin: 90,
    bMin: 70,
    cMin: 50,
    fulfilled: w(3, 1095),
    fulfilledCap: 15,
    breachMinor: w(-5, 90),
    breachGeneral: w(-20, 365),
    breachSerious: w(-50, 1095),
    repairedPercent: 25,
    rewardListPoints: 10,
    rewardListDays: 1095,
    seriousListDays: 1095,
    seriousListCap: 3,
    seriousBreachCap: 2,
    domainPercent: ["food", "drug", "health"].map((domain) => ({ domain, percent: 150 })),
  };
}

// ---- reading: the same shape in TOML and in JSON, but for roles and keys -------------

function tier(v: Json | undefined, what: string): Tier {
  const o = obj(v, what);
  only(o, what, ["min_days", "max_days", "repairable", "published"]);
  return {
    minDays: uint(field(o, "min_days", what), `${what}.min_days`, "u32"),
    maxDays: uint(field(o, "max_days", what), `${what}.max_days`, "u32"),
    repairable: bool(field(o, "repairable", what), `${what}.repairable`),
    published: o["published"] === undefined ? true : bool(o["published"], `${what}.published`),
  };
}

function weight(v: Json | undefined, what: string): Weight {
  const o = obj(v, what);
  only(o, what, ["points", "window_days"]);
  return {
    points: int(field(o, "points", what), `${what}.points`, 32),
    windowDays: uint(field(o, "window_days", what), `${what}.window_days`, "u32"),
  };
}

function grade(v: Json | undefined, what: string): number {
  const i = GRADES.indexOf(str(v, what) as (typeof GRADES)[number]);
  if (i < 0) fail(`${what}: expected one of A, B, C, D`);
  return i;
}

const GRADING_FIELDS = [
  "version", "base", "a_min", "b_min", "c_min", "fulfilled", "fulfilled_cap", "breach_minor",
  "breach_general", "breach_serious", "repaired_percent", "reward_list_points",
  "reward_list_days", "serious_list_days", "serious_list_cap", "serious_breach_cap",
  "domain_percent",
];

function grading(v: Json | undefined, what: string): Grading {
  if (v === undefined) return defaultGrading();
  const o = obj(v, what);
  only(o, what, GRADING_FIELDS);
  const f = (k: string) => field(o, k, what);
  const i32 = (k: string) => int(f(k), `${what}.${k}`, 32);
  const u32 = (k: string) => uint(f(k), `${what}.${k}`, "u32");
  return {
    version: u32("version"),
    base: i32("base"),
    aMin: i32("a_min"),
    bMin: i32("b_min"),
    cMin: i32("c_min"),
    fulfilled: weight(f("fulfilled"), `${what}.fulfilled`),
    fulfilledCap: i32("fulfilled_cap"),
    breachMinor: weight(f("breach_minor"), `${what}.breach_minor`),
    breachGeneral: weight(f("breach_general"), `${what}.breach_general`),
    breachSerious: weight(f("breach_serious"), `${what}.breach_serious`),
    repairedPercent: u32("repaired_percent"),
    rewardListPoints: i32("reward_list_points"),
    rewardListDays: u32("reward_list_days"),
    seriousListDays: u32("serious_list_days"),
    seriousListCap: grade(f("serious_list_cap"), `${what}.serious_list_cap`),
    seriousBreachCap: grade(f("serious_breach_cap"), `${what}.serious_breach_cap`),
    domainPercent: arr(f("domain_percent"), `${what}.domain_percent`).map((d, i) => {
      const w = `${what}.domain_percent[${i}]`;
      const dw = obj(d, w);
      only(dw, w, ["domain", "percent"]);
      return {
        domain: str(field(dw, "domain", w), `${w}.domain`),
        percent: uint(field(dw, "percent", w), `${w}.percent`, "u32"),
      };
    }),
  };
}

function policy(v: Json | undefined, what: string): Policy {
  const o = obj(v, what);
  only(o, what, [
    "block_interval_ms", "block_records_max", "block_bytes_max", "record_bytes_max",
    "block_time_drift_ms_max", "publication", "grading", "trace",
  ]);
  const pub = obj(field(o, "publication", what), `${what}.publication`);
  const pw = `${what}.publication`;
  only(pub, pw, ["minor", "general", "serious", "domains"]);
  const tiers = (t: Obj, w: string) => ({
    minor: tier(field(t, "minor", w), `${w}.minor`),
    general: tier(field(t, "general", w), `${w}.general`),
    serious: tier(field(t, "serious", w), `${w}.serious`),
  });
  const domains = (pub["domains"] === undefined ? [] : arr(pub["domains"], `${pw}.domains`)).map(
    (d, i) => {
      const w = `${pw}.domains[${i}]`;
      const dp = obj(d, w);
      only(dp, w, ["domain", "minor", "general", "serious"]);
      return { domain: str(field(dp, "domain", w), `${w}.domain`), ...tiers(dp, w) };
    },
  );
  let trace: Policy["trace"] = [];
  if (o["trace"] !== undefined) {
    const t = obj(o["trace"], `${what}.trace`);
    only(t, `${what}.trace`, ["domains"]);
    const list = t["domains"] === undefined ? [] : arr(t["domains"], `${what}.trace.domains`);
    trace = list.map((d, i) => {
      const w = `${what}.trace.domains[${i}]`;
      const td = obj(d, w);
      only(td, w, ["domain", "hide"]);
      return {
        domain: str(field(td, "domain", w), `${w}.domain`),
        hide: arr(field(td, "hide", w), `${w}.hide`).map((h, j) => {
          const k = TRACE_FIELDS.indexOf(str(h, `${w}.hide[${j}]`) as (typeof TRACE_FIELDS)[number]);
          if (k < 0) fail(`${w}.hide[${j}]: expected one of ${TRACE_FIELDS.join(", ")}`);
          return k;
        }),
      };
    });
  }
  const n = (k: string, ty: "u32" | "u64") => uint(field(o, k, what), `${what}.${k}`, ty);
  return {
    blockIntervalMs: n("block_interval_ms", "u64"),
    blockRecordsMax: n("block_records_max", "u32"),
    blockBytesMax: n("block_bytes_max", "u32"),
    recordBytesMax: n("record_bytes_max", "u32"),
    blockTimeDriftMsMax: n("block_time_drift_ms_max", "u64"),
    publication: { ...tiers(pub, pw), domains },
    grading: grading(o["grading"], `${what}.grading`),
    trace,
  };
}

/** A role as a genesis file writes it: `credit-authority:food`. */
export function parseRole(s: string, what: string): Role {
  const i = s.indexOf(":");
  if (i < 0) {
    if (s === "validator" || s === "observer" || s === "registrar") return { kind: s };
  } else {
    const [kind, domain] = [s.slice(0, i), s.slice(i + 1)];
    if ((kind === "credit-authority" || kind === "trace-authority") && isSlug(domain, 32))
      return { kind, domain };
  }
  fail(`${what}: unknown role '${s}'`);
}

/** A role as serde writes it in JSON: "Validator" or {"CreditAuthority": "food"}. */
function jsonRole(v: Json, what: string): Role {
  if (v === "Validator") return { kind: "validator" };
  if (v === "Observer") return { kind: "observer" };
  if (v === "Registrar") return { kind: "registrar" };
  const o = obj(v, what);
  const keys = Object.keys(o);
  if (keys.length === 1 && keys[0] === "CreditAuthority")
    return { kind: "credit-authority", domain: str(o["CreditAuthority"], what) };
  if (keys.length === 1 && keys[0] === "TraceAuthority")
    return { kind: "trace-authority", domain: str(o["TraceAuthority"], what) };
  fail(`${what}: unknown role`);
}

function compareRoles(a: Role, b: Role): number {
  const d = ROLE_ORDER.indexOf(a.kind) - ROLE_ORDER.indexOf(b.kind);
  if (d !== 0) return d;
  const [x, y] = ["domain" in a ? a.domain : "", "domain" in b ? b.domain : ""];
  return x < y ? -1 : x > y ? 1 : 0; // domains are ASCII slugs: code-unit order is byte order
}

/** UTF-8 length. */
function text(s: string): number {
  return new TextEncoder().encode(s).length;
}

function isSlug(s: string, max: number): boolean {
  return s.length >= 1 && s.length <= max && /^[a-z0-9.-]+$/.test(s);
}

/** RFC 3339 (`2026-11-29T00:00:00Z`) to milliseconds since the epoch. */
export function parseTimeMs(s: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))$/.exec(s);
  if (!m) return null;
  const [y, mo, d, h, mi, se] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i]));
  const utc = (...a: [number, number, number, number?, number?, number?]) => {
    // Date.UTC reads years 0 to 99 as 19xx: set the year itself.
    const t = new Date(Date.UTC(2000, a[1], a[2], a[3] ?? 0, a[4] ?? 0, a[5] ?? 0));
    t.setUTCFullYear(a[0]);
    return t.getTime();
  };
  const days = new Date(utc(y!, mo!, 0)).getUTCDate(); // the month's last day
  if (mo! < 1 || mo! > 12 || d! < 1 || d! > days || h! > 23 || mi! > 59 || se! > 59) return null;
  // Milliseconds from the fraction's first three digits, in integers (no rounding);
  // before 1970 the nanoseconds truncate toward zero, as Rust's division does.
  const digits = (m[7] ?? ".").slice(1);
  const frac = Number((digits + "000").slice(0, 3));
  const below = /[1-9]/.test(digits.slice(3)) || false;
  let offset = 0;
  if (m[9]) {
    const [oh, om] = [Number(m[10]), Number(m[11])];
    if (oh > 23 || om > 59) return null;
    offset = (m[9] === "-" ? -1 : 1) * (oh * 60 + om) * 60_000;
  }
  const ms = utc(y!, mo! - 1, d!, h!, mi!, se!) + frac - offset;
  return ms < 0 && below ? ms + 1 : ms;
}

/** The genesis file as the consortium hands it out, validated as the node does. */
export function genesisFromToml(textToml: string): Genesis {
  let doc: Json;
  try {
    doc = parseToml(textToml) as unknown as Json;
  } catch (e) {
    fail(`genesis: not TOML: ${(e as Error).message.split("\n")[0]}`);
  }
  const o = obj(doc, "genesis");
  only(o, "genesis", ["chain_id", "genesis_time", "policy", "members"]);
  const chainId = str(field(o, "chain_id", "genesis"), "genesis.chain_id");
  if (!isSlug(chainId, 64)) fail("genesis.chain_id: must be a slug of 1 to 64 characters");
  const time = parseTimeMs(str(field(o, "genesis_time", "genesis"), "genesis.genesis_time"));
  if (time === null) fail("genesis.genesis_time: not an RFC 3339 time");
  const members = (o["members"] === undefined ? [] : arr(o["members"], "genesis.members")).map(
    (m, i) => {
      const w = `genesis.members[${i}]`;
      const mo = obj(m, w);
      only(mo, w, ["id", "name", "region", "roles", "voting_power", "node_key", "signing_key"]);
      const key = (k: string) => fromHex(str(mo[k], `${w}.${k}`).trim(), `${w}.${k}`, 32);
      return {
        id: str(field(mo, "id", w), `${w}.id`),
        name: str(field(mo, "name", w), `${w}.name`),
        region: str(field(mo, "region", w), `${w}.region`),
        roles: arr(field(mo, "roles", w), `${w}.roles`)
          .map((r, j) => parseRole(str(r, `${w}.roles[${j}]`), `${w}.roles[${j}]`))
          .sort(compareRoles),
        votingPower: mo["voting_power"] === undefined ? 0 : uint(mo["voting_power"], `${w}.voting_power`, "u64"),
        nodeKey: mo["node_key"] === undefined ? null : key("node_key"),
        signingKey: (field(mo, "signing_key", w), key("signing_key")),
      };
    },
  );
  const roster: Roster = { members, policy: policy(field(o, "policy", "genesis"), "genesis.policy") };
  const problem = rosterProblem(roster);
  if (problem) fail(`genesis: ${problem}`);
  const enc = new Writer().str(chainId).signed(time);
  encodePolicy(enc, roster.policy);
  enc.seq(roster.members, encodeMember);
  return { chainId, genesisTimeMs: time, ...roster, hash: taggedHash("xinlian/genesis/v1", enc.bytes()) };
}

/** A roster as a roster change in an answer carries it. */
export function rosterFromJson(v: Json | undefined, what: string): Roster {
  const o = obj(v, what);
  const members = arr(field(o, "members", what), `${what}.members`).map((m, i) => {
    const w = `${what}.members[${i}]`;
    const mo = obj(m, w);
    const nk = mo["node_key"];
    return {
      id: str(field(mo, "id", w), `${w}.id`),
      name: str(field(mo, "name", w), `${w}.name`),
      region: str(field(mo, "region", w), `${w}.region`),
      roles: arr(field(mo, "roles", w), `${w}.roles`).map((r, j) => jsonRole(r, `${w}.roles[${j}]`)),
      votingPower: uint(field(mo, "voting_power", w), `${w}.voting_power`, "u64"),
      nodeKey: nk === undefined || nk === null ? null : fromHex(str(nk, `${w}.node_key`), `${w}.node_key`, 32),
      signingKey: fromHex(str(field(mo, "signing_key", w), `${w}.signing_key`), `${w}.signing_key`, 32),
    };
  });
  return { members, policy: policy(field(o, "policy", what), `${what}.policy`) };
}

// ---- rules ---------------------------------------------------------------------------

/** The first thing wrong with a roster by the rules genesis and every governance change
 * are held to (Roster::problems), or null. The publication tiers' and trace policy's own
 * bounds are the validators' to enforce: this verifier reads neither. */
export function rosterProblem(r: Roster): string | null {
  const p = r.policy;
  if (p.blockIntervalMs < 10 || p.blockIntervalMs > 60_000) return "block_interval_ms is outside 10..=60000";
  if (p.blockRecordsMax === 0) return "block_records_max must be at least 1";
  if (p.blockBytesMax < 256 || p.blockBytesMax > 64 << 20) return "block_bytes_max is outside 256..=67108864";
  if (p.recordBytesMax < 256 || p.recordBytesMax > p.blockBytesMax) return "record_bytes_max is out of bounds";
  if (p.blockTimeDriftMsMax === 0) return "block_time_drift_ms_max must be positive";
  const gradingProblem = gradingProblemOf(p.grading);
  if (gradingProblem) return gradingProblem;
  if (r.members.length === 0) return "no members";
  if (r.members.length > 256) return "more than 256 members";
  const ids = new Set<string>();
  const keys = new Set<string>();
  let total = 0n;
  for (const m of r.members) {
    if (!isSlug(m.id, 64)) return `member id '${m.id}' is not a slug of 1 to 64 characters`;
    if (ids.has(m.id)) return `member '${m.id}' appears twice`;
    ids.add(m.id);
    const names = new Set(m.roles.map(roleName));
    if (names.size !== m.roles.length) return `member '${m.id}' holds a role twice`;
    for (const role of m.roles) if ("domain" in role && !isSlug(role.domain, 32)) return `member '${m.id}': bad domain`;
    const validator = names.has("validator");
    const observer = names.has("observer");
    if (validator && observer) return `member '${m.id}' is both validator and observer`;
    if (validator && m.votingPower === 0) return `validator '${m.id}' has no voting power`;
    if (!validator && m.votingPower !== 0) return `member '${m.id}' has voting power but no vote`;
    total += BigInt(m.votingPower);
    if ((validator || observer) !== (m.nodeKey !== null)) return `member '${m.id}': node key and roles disagree`;
    if (m.name.length === 0 || text(m.name) > 256 || m.region.length === 0 || text(m.region) > 256)
      return `member '${m.id}': name and region must be 1 to 256 bytes`;
    for (const k of [m.nodeKey, m.signingKey]) {
      if (k === null) continue;
      if (!bindable(k)) return `member '${m.id}': key ${toHex(k)} is not canonical or is weak`;
      const h = toHex(k);
      if (keys.has(h)) return `key ${h} is used twice`;
      keys.add(h);
    }
  }
  if (total > 0xffffffffffffffffn / 4n) return "total voting power overflows";
  if (!r.members.some((m) => m.roles.some((x) => x.kind === "validator"))) return "no validators";
  return null;
}

/** The grading rules' own bounds (Grading::problems): a credit report is graded by them. */
function gradingProblemOf(g: Grading): string | null {
  if (g.version === 0) return "grading.version must be at least 1";
  if (!(g.aMin > g.bMin && g.bMin > g.cMin)) return "grading thresholds must fall: a_min > b_min > c_min";
  const points = [g.base, g.aMin, g.bMin, g.cMin, g.fulfilled.points, g.fulfilledCap, g.breachMinor.points, g.breachGeneral.points, g.breachSerious.points, g.rewardListPoints];
  if (points.some((p) => Math.abs(p) > 1000)) return "grading: points outside ±1000";
  const windows = [g.fulfilled.windowDays, g.breachMinor.windowDays, g.breachGeneral.windowDays, g.breachSerious.windowDays, g.rewardListDays, g.seriousListDays];
  if (windows.some((d) => d < 1 || d > 36_500)) return "grading: a window outside 1..=36500 days";
  if (g.repairedPercent > 100) return "grading.repaired_percent is over 100";
  if (g.domainPercent.length > 64) return "grading.domain_percent has over 64 entries";
  const seen = new Set<string>();
  for (const d of g.domainPercent) {
    if (seen.has(d.domain)) return `grading.domain_percent names '${d.domain}' twice`;
    seen.add(d.domain);
    if (!isSlug(d.domain, 64)) return `grading.domain_percent: '${d.domain}' is not a domain`;
    if (d.percent > 1000) return `grading.domain_percent: ${d.percent} % for '${d.domain}' is over 1000`;
  }
  return null;
}

export function hasRole(m: Member, role: Role): boolean {
  return m.roles.some((r) => sameRole(r, role));
}

/** The validators in roster order: their indices in certificates. */
export function validatorSet(r: Roster): Validator[] {
  return r.members
    .filter((m) => m.roles.some((x) => x.kind === "validator"))
    .map((m) => ({ member: m.id, key: m.nodeKey ?? fail(`validator '${m.id}' has no node key`), power: m.votingPower }));
}

export function validatorSetHash(vs: Validator[]): Uint8Array {
  const w = new Writer().seq(vs, (w, v) => w.str(v.member).fixed(v.key).varint(v.power));
  return taggedHash("xinlian/validator-set/v1", w.bytes());
}

export function rosterHash(r: Roster): Uint8Array {
  const w = new Writer().seq(r.members, encodeMember);
  encodePolicy(w, r.policy);
  return taggedHash("xinlian/roster/v1", w.bytes());
}

// ---- canonical encoding --------------------------------------------------------------

function encodeRole(w: Writer, r: Role): void {
  w.varint(ROLE_ORDER.indexOf(r.kind));
  if ("domain" in r) w.str(r.domain);
}

function encodeMember(w: Writer, m: Member): void {
  w.str(m.id).str(m.name).str(m.region).seq(m.roles, encodeRole).varint(m.votingPower);
  w.option(m.nodeKey, (w, k) => w.fixed(k)).fixed(m.signingKey);
}

function encodeTier(w: Writer, t: Tier): void {
  w.varint(t.minDays).varint(t.maxDays).bool(t.repairable).bool(t.published);
}

function encodeWeight(w: Writer, x: Weight): void {
  w.signed(x.points).varint(x.windowDays);
}

function encodePolicy(w: Writer, p: Policy): void {
  w.varint(p.blockIntervalMs).varint(p.blockRecordsMax).varint(p.blockBytesMax);
  w.varint(p.recordBytesMax).varint(p.blockTimeDriftMsMax);
  const pub = p.publication;
  for (const t of [pub.minor, pub.general, pub.serious]) encodeTier(w, t);
  w.seq(pub.domains, (w, d) => {
    w.str(d.domain);
    for (const t of [d.minor, d.general, d.serious]) encodeTier(w, t);
  });
  const g = p.grading;
  w.varint(g.version).signed(g.base).signed(g.aMin).signed(g.bMin).signed(g.cMin);
  encodeWeight(w, g.fulfilled);
  w.signed(g.fulfilledCap);
  for (const x of [g.breachMinor, g.breachGeneral, g.breachSerious]) encodeWeight(w, x);
  w.varint(g.repairedPercent).signed(g.rewardListPoints).varint(g.rewardListDays);
  w.varint(g.seriousListDays).varint(g.seriousListCap).varint(g.seriousBreachCap);
  w.seq(g.domainPercent, (w, d) => w.str(d.domain).varint(d.percent));
  w.seq(p.trace, (w, d) => w.str(d.domain).seq(d.hide, (w, h) => w.varint(h)));
}
