// The enterprise page, for the public: the registration, the commitments the public may
// read with their verification outcomes and repairs, and list measures — each record
// fetched with its proof and verified here (final, exactly as signed, by a signer
// entitled to it), and every status shown derived here from those verified records.
// What the public cannot check: that no record is left out (the complete record and
// the grade are the enterprise's and the consortium's: the enterprise's credit report
// proves them), so the node's grade is shown as the node's.

import { toHex } from "../verify/bytes.js";
import type { CreditBody } from "../verify/record.js";
import { type VerifiedRecord, LightClient, recordProofFromJson, rosterChangesFromJson } from "../verify/verify.js";
import type { Json } from "../verify/json.js";
import { obj, str } from "../verify/json.js";
import { facts, h } from "./dom.js";
import { type Word, t } from "./i18n.js";
import { anchor, ask, parseJson } from "./node-api.js";

/** Most records verified for one page (the API's first page of them). */
const RECORDS_MAX = 200;

export function enterprisePage(root: HTMLElement, uscc: string, labelChain: string | null): void {
  root.replaceChildren(h("h1", {}, uscc), h("p", { class: "muted" }, t("verifying")));
  const here = location.hash;
  load(uscc, labelChain)
    .then((nodes) => {
      if (location.hash === here) root.replaceChildren(...nodes);
    })
    .catch((e: Error) => {
      if (location.hash !== here) return;
      root.replaceChildren(
        h("h1", {}, uscc),
        h("div", { class: "verdict bad", "data-verdict": "bad" }, `✗ ${t("not_verified")}`, h("span", { class: "reason" }, e.message)),
      );
    });
}

function day(d: number): string {
  return new Date(d * 86_400_000).toISOString().slice(0, 10);
}

async function load(uscc: string, labelChain: string | null): Promise<Node[]> {
  const a = await anchor(labelChain);
  const client = new LightClient(a.genesis);
  const changes = (parseJson(await ask("/v1/rosters?after=1"), "roster changes") as { changes?: Json }).changes;
  client.acceptChanges(rosterChangesFromJson(changes, "roster changes"));
  const view = obj(parseJson(await ask(`/v1/enterprises/${encodeURIComponent(uscc)}`), "enterprise"), "enterprise");
  const ids = (Array.isArray(view["records"]) ? view["records"] : []).map((x, i) => str(x, `records[${i}]`));
  if (ids.length > RECORDS_MAX) throw new Error(`the answer lists ${ids.length} records, more than ${RECORDS_MAX}`);
  const records = new Map<string, VerifiedRecord>();
  for (const id of ids) {
    if (!/^[0-9a-f]{64}$/.test(id)) throw new Error(`record id ${id} is not a record id`);
    const proof = recordProofFromJson(parseJson(await ask(`/v1/records/${id}/proof`), "record proof"), "record proof");
    const v = client.verifyRecord(proof);
    if (v.id !== id) throw new Error(`asked for record ${id}, the proof is of record ${v.id}`);
    records.set(id, v);
  }
  // The registration: the node's account of the enterprise must be what it says.
  const entity = obj(view["entity"] ?? null, "entity");
  const registration = [...records.values()].find((r) => r.record.binding?.kind === "register_entity");
  const reg = registration?.record.binding;
  if (!reg || reg.kind !== "register_entity" || reg.uscc !== uscc)
    throw new Error(`no verified registration of ${uscc} among the records the node lists`);
  if (entity["uscc"] !== uscc || entity["name"] !== reg.name)
    throw new Error(`the node names the enterprise "${String(entity["name"])}", its registration names it "${reg.name}"`);
  const credit = (kind: CreditBody["kind"]) =>
    [...records.values()].filter((r) => r.record.credit?.kind === kind).map((r) => ({ id: r.id, body: r.record.credit!, record: r }));
  for (const c of [...credit("commitment"), ...credit("list_measure")])
    if ((c.body.kind === "commitment" || c.body.kind === "list_measure") && c.body.subject !== uscc)
      throw new Error(`${c.body.kind} ${c.id}, listed for ${uscc}, is ${c.body.subject}'s`);
  const outcomes = credit("outcome");
  const applications = credit("repair_application");
  const decisions = credit("repair_decision");
  const signer = (r: VerifiedRecord) => (r.signer.type === "member" ? r.signer.id : r.signer.type === "enterprise" ? r.signer.uscc : "custody");

  const rows = credit("commitment").map((c) => {
    const b = c.body.kind === "commitment" ? c.body : null;
    const outcome = outcomes.filter((o) => o.body.kind === "outcome" && toHex(o.body.commitment) === c.id).at(-1);
    let status: string = t("st_open");
    if (outcome && outcome.body.kind === "outcome") {
      status = t(`st_${outcome.body.verdict}` as Word);
      // The latest application: a refused one may be followed by another.
      const app = applications.filter((x) => x.body.kind === "repair_application" && toHex(x.body.outcome) === outcome.id).at(-1);
      const decided = app && decisions.find((d) => d.body.kind === "repair_decision" && toHex(d.body.application) === app.id);
      if (decided && decided.body.kind === "repair_decision")
        status += ` → ${decided.body.approved ? t("st_repaired") : t("st_repair_refused")} ${day(decided.body.date)}`;
      else if (app) status += ` → ${t("st_repair_applied")}`;
      status += ` (${t("outcome")} ${day(outcome.body.date)}, ${signer(outcome.record)})`;
    }
    return [b ? t(`ck_${b.commitmentKind}` as Word) : "", b?.matter ?? "", b?.domain ?? "", b?.acceptingAgency ?? "", b ? day(b.deadline) : "", status];
  });
  const lists = credit("list_measure").map((l) => {
    const b = l.body.kind === "list_measure" ? l.body : null;
    return [b ? t(b.list === "reward" ? "list_reward" : "list_serious") : "", b ? t(b.action === "add" ? "list_add" : "list_remove") : "", b?.domain ?? "", b ? day(b.date) : "", signer(l.record)];
  });
  checkClaims(view, uscc, registration!, credit, outcomes);
  const grade = obj(view["grade"] ?? {}, "grade");
  const out: Node[] = [
    h("h1", {}, reg.name),
    h("div", { class: "verdict ok", "data-verdict": "ok" }, `✓ ${t("verified")}`, h("span", { class: "reason" }, `${records.size} ${t("records_verified")} · ${toHex(a.genesis.hash).slice(0, 16)}…`)),
  ];
  if (a.source === "node") out.push(h("p", { class: "warn" }, t("anchor_node_warn")));
  out.push(
    h(
      "div",
      { class: "card" },
      facts([
        [t("uscc"), uscc],
        [t("registered_by"), registration!.signer.type === "member" ? registration!.signer.id : ""],
        [t("registered_in"), `${t("block")} ${registration!.blockHeight ?? registration!.finalAt}`],
      ]),
    ),
  );
  out.push(h("h2", {}, t("commitments")));
  out.push(rows.length === 0 ? h("p", { class: "muted" }, t("none")) : table([t("kind"), t("matter"), t("domain"), t("accepting_agency"), t("deadline"), t("status")], rows));
  out.push(h("h2", {}, t("lists")));
  out.push(lists.length === 0 ? h("p", { class: "muted" }, t("none")) : table([t("list"), t("action"), t("domain"), t("date"), t("decided_by")], lists));
  out.push(h("h2", {}, t("grade")));
  out.push(
    h(
      "div",
      { class: "card" },
      h("p", {}, `${t("grade_by_node")}: `, h("strong", { id: "grade" }, String(grade["grade"] ?? "—"))),
      h("p", { class: "muted" }, t("grade_note")),
      h("ul", {}, ...[...(Array.isArray(grade["reasons"]) ? grade["reasons"] : []), ...(Array.isArray(grade["caps"]) ? grade["caps"] : [])].map((r) => {
        const ro = obj(r, "reason");
        return h("li", {}, `${String(ro["rule"] ?? "")} ${Number(ro["points"] ?? 0) >= 0 ? "+" : ""}${String(ro["points"] ?? "")}: ${String(ro["detail"] ?? "")}`);
      })),
      h("p", {}, h("a", { href: "#/verify" }, t("verify_report"))),
    ),
  );
  out.push(h("p", { class: "muted" }, t("public_note")));
  return out;
}

type Listed = { id: string; body: CreditBody; record: VerifiedRecord }[];

/** What the node's answer claims beside the record ids must agree with the verified
 * records: the registration, and each commitment's and listing's facts and outcome. */
function checkClaims(view: Record<string, Json>, uscc: string, registration: VerifiedRecord, credit: (k: CreditBody["kind"]) => Listed, outcomes: Listed): void {
  function bad(what: string): never {
    throw new Error(`the node's account disagrees with the verified records: ${what}`);
  }
  const entity = obj(view["entity"] ?? null, "entity");
  const reg = registration.record.binding;
  if (reg?.kind !== "register_entity" || entity["key"] !== toHex(reg.key)) bad("the enterprise's key");
  if (registration.signer.type !== "member" || entity["registered_by"] !== registration.signer.id) bad("who registered it");
  if (entity["registered_at"] !== registration.blockHeight) bad("when it was registered");
  const commitments = new Map(credit("commitment").map((c) => [c.id, c.body]));
  for (const c of Array.isArray(view["commitments"]) ? view["commitments"] : []) {
    const o = obj(c, "commitment");
    const b = commitments.get(String(o["id"]));
    if (!b || b.kind !== "commitment") bad(`commitment ${String(o["id"])} is not among the verified records`);
    if (o["subject"] !== uscc || o["kind"] !== b.commitmentKind || o["accepting_agency"] !== b.acceptingAgency || o["domain"] !== b.domain || o["deadline"] !== day(b.deadline))
      bad(`commitment ${String(o["id"])}'s facts`);
    const last = outcomes.filter((x) => x.body.kind === "outcome" && toHex(x.body.commitment) === o["id"]).at(-1);
    const outcomeDate = last && last.body.kind === "outcome" ? day(last.body.date) : null;
    if ((o["outcome"] ?? null) !== (last?.id ?? null) || (o["outcome_date"] ?? null) !== outcomeDate) bad(`commitment ${String(o["id"])}'s outcome`);
  }
  const lists = new Map(credit("list_measure").map((l) => [l.id, l.body]));
  for (const l of Array.isArray(view["lists"]) ? view["lists"] : []) {
    const o = obj(l, "listing");
    const b = lists.get(String(o["measure"]));
    if (!b || b.kind !== "list_measure") bad(`listing ${String(o["measure"])} is not among the verified records`);
    if (o["list"] !== b.list || o["subject"] !== uscc || o["domain"] !== b.domain || o["date"] !== day(b.date)) bad(`listing ${String(o["measure"])}'s facts`);
  }
}

function table(head: string[], rows: string[][]): HTMLElement {
  return h(
    "div",
    { class: "scroll" },
    h("table", {}, h("thead", {}, h("tr", {}, ...head.map((c) => h("th", {}, c)))), h("tbody", {}, ...rows.map((r) => h("tr", {}, ...r.map((c, i) => h("td", { "data-label": head[i] ?? "" }, c)))))),
  );
}
