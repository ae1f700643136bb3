// The batch page, what an inspector scans: product, lot and origin, the trace both
// ways, custody transfers with their acknowledgements, inspections, a recall banner when
// the batch or anything upstream is recalled, recall reach with current holders, and
// the proof bundle. Everything shown comes from the verified answer; an answer that
// does not verify shows its reason and nothing of its content.

import { toHex } from "../verify/bytes.js";
import {
  type Provenance, type ProvenanceProof, type VerifiedBatch, type VerifiedEvent, PROVENANCE_BUNDLE_FORMAT,
  merge, preverifyProvenance, provenanceFromJson, recallsAffecting, verifyProvenance, walk,
} from "../verify/provenance.js";
import { type Header, LightClient, rosterChangesFromJson } from "../verify/verify.js";
import type { Json } from "../verify/json.js";
import { facts, h } from "./dom.js";
import { amount, eventTime, party } from "./format.js";
import { type Amount, amountValue } from "../verify/trace.js";
import { type Word, t } from "./i18n.js";
import { type Anchor, anchor, ask, parseJson } from "./node-api.js";

const PAGES_MAX = 256;
/** An answer whose header is older than this is said to be so: blocks come at least
 * every few seconds while records arrive, and an idle chain still finalizes empty ones. */
const STALE_MS = 10 * 60_000;
const ROOTS_PER_PAGE = 256;

export interface BatchAnswer {
  anchor: Anchor;
  provenance: Provenance;
  /** The verified header's time: how current the answer is. */
  headerTimeMs: number;
  /** A height this browser verified before, above the answer's: it may be stale. */
  older: number | null;
  /** The bundle of every page, for `xinlian verify` or the verify page. */
  bundle: string;
}

/** Fetches and verifies a batch's provenance both ways, every page of it. */
export async function verifiedBatch(batch: string, labelChain: string | null): Promise<BatchAnswer> {
  const a = await anchor(labelChain);
  const client = new LightClient(a.genesis);
  const changesJson = (parseJson(await ask("/v1/rosters?after=1"), "roster changes") as { changes?: Json }).changes;
  const changes = rosterChangesFromJson(changesJson, "roster changes");
  client.acceptChanges(changes);
  const pagesJson: Json[] = [];
  let firstHeader: Header | null = null;
  const page = async (text: string, roots: string[]): Promise<Provenance> => {
    const json = parseJson(text, "provenance");
    const proof: ProvenanceProof = provenanceFromJson(json, "provenance");
    firstHeader ??= proof.checkpoint.header;
    await preverifyProvenance(client, proof);
    const v = verifyProvenance(client, proof);
    if (proof.roots.length !== roots.length || proof.roots.some((r, i) => r !== roots[i]))
      throw new Error(`asked for the provenance of ${roots.join(", ")}, the answer starts from ${proof.roots.join(", ")}`);
    // A walk in one direction only would leave out a branch (a recall upstream, say).
    if (proof.direction !== "both") throw new Error(`asked for the trace both ways, the answer walks ${proof.direction}`);
    pagesJson.push(json);
    return v;
  };
  const path = `/v1/batches/${encodeURIComponent(batch)}/provenance?direction=both`;
  const answer = await page(await ask(path), [batch]);
  const header = firstHeader!;
  while (answer.missing.size > 0 && pagesJson.length < PAGES_MAX) {
    const roots = [...answer.missing].sort().slice(0, ROOTS_PER_PAGE);
    const before = answer.batches.size;
    merge(answer, await page(await ask("/v1/provenance", { roots, direction: "both" }), roots));
    if (answer.batches.size === before) break;
  }
  const bundle = JSON.stringify({
    format: PROVENANCE_BUNDLE_FORMAT,
    chain: toHex(a.genesis.hash),
    roster_changes: changesJson ?? [],
    root: batch,
    direction: "both",
    pages: pagesJson,
  });
  return { anchor: a, provenance: answer, bundle, headerTimeMs: header.timeMs, older: seen(a.genesis.hash, header.height) };
}

const SEEN = "xinlian.seen.";

/** The highest height this browser has verified on the chain, remembered; whether this
 * answer's header is below it (then it may leave out what was recorded since). */
function seen(chain: Uint8Array, height: number): number | null {
  try {
    const key = SEEN + toHex(chain);
    const before = Number(localStorage.getItem(key) ?? "0");
    if (height > before) localStorage.setItem(key, String(height));
    return before > height ? before : null;
  } catch {
    return null;
  }
}

export function batchPage(root: HTMLElement, batch: string, labelChain: string | null): void {
  root.replaceChildren(h("h1", {}, `${t("batch")} ${batch}`), h("p", { class: "muted", id: "status" }, t("verifying")));
  const started = performance.now();
  const here = location.hash;
  verifiedBatch(batch, labelChain)
    .then((a) => {
      if (location.hash !== here) return; // the reader moved on: an old answer stays unshown
      root.replaceChildren(...render(batch, a));
      root.dataset["verifiedMs"] = String(Math.round(performance.now() - started));
    })
    .catch((e: Error) => {
      if (location.hash !== here) return;
      root.replaceChildren(
        h("h1", {}, `${t("batch")} ${batch}`),
        h("div", { class: "verdict bad", "data-verdict": "bad" }, `✗ ${t("not_verified")}`, h("span", { class: "reason" }, e.message)),
      );
    });
}

/** Names of enterprises as their proven registrations give them. */
function names(p: Provenance): Map<string, string> {
  const out = new Map<string, string>();
  for (const b of p.batches.values())
    for (const e of b.events) if (e.signer.type === "enterprise" && e.signer.name) out.set(e.signer.uscc, e.signer.name);
  return out;
}

const KIND_WORDS: Record<string, Word> = {
  commission: "ev_commission",
  ship: "ev_ship",
  receive: "ev_receive",
  transform: "ev_transform",
  inspect: "ev_inspect",
  recall: "ev_recall",
  sell: "ev_sell",
};

function who(e: VerifiedEvent, n: Map<string, string>): string {
  const s = e.signer;
  if (s.type === "member") return `${t("member")} ${s.id}`;
  return party(s.type === "enterprise" ? { form: "enterprise", uscc: s.uscc } : { form: "custody", key: e.record.signer }, n);
}

function detail(e: VerifiedEvent, b: VerifiedBatch, n: Map<string, string>): string {
  const x = e.body;
  const hidden = t("hidden");
  const uom = b.state.uom;
  const shown = (a: Amount) => (b.amountsWithheld ? null : amountValue(a));
  switch (x.kind) {
    case "commission":
      return `${amount(shown(x.quantity.amount), uom, hidden)} · ${x.origin}`;
    case "ship":
      return `${amount(shown(x.quantity.amount), uom, hidden)} → ${party(x.to, n)} · ${x.fromLocation} → ${x.toLocation}`;
    case "receive":
      return x.location;
    case "transform":
      return `${x.inputs.map((i) => i.batch).join(", ")} → ${x.outputs.map((o) => o.batch).join(", ")} · ${x.location}`;
    case "inspect":
      return `${x.result === "pass" ? t("pass") : t("fail")} · ${x.standard} · ${x.location}`;
    case "recall":
      return x.reason;
    case "sell":
      return `${amount(shown(x.quantity.amount), uom, hidden)} · ${x.location}`;
  }
}

function table(head: string[], rows: (string | Node)[][], cls = ""): HTMLElement {
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      { class: cls },
      h("thead", {}, h("tr", {}, ...head.map((c) => h("th", {}, c)))),
      // Each cell names its column, for phones, where rows stack (style.css).
      h("tbody", {}, ...rows.map((r) => h("tr", {}, ...r.map((c, i) => h("td", { "data-label": head[i] ?? "" }, c))))),
    ),
  );
}

function holders(b: VerifiedBatch, n: Map<string, string>): string {
  const list = [...b.holders.values()].map((x) => `${party(x.party, n)}: ${amount(x.amount, b.state.uom, t("hidden"))}`);
  const transit = b.inTransit.map((x) => `${t("in_transit")} → ${party(x.to, n)}: ${amount(x.amount, b.state.uom, t("hidden"))}`);
  return [...list, ...transit].join("; ") || t("nobody");
}

function render(name: string, a: BatchAnswer): Node[] {
  const p = a.provenance;
  const b = p.batches.get(name);
  const n = names(p);
  const out: Node[] = [];
  const source = { file: t("anchor_file"), label: t("anchor_label"), node: t("anchor_node") }[a.anchor.source];
  if (!b) {
    out.push(h("div", { class: "verdict bad", "data-verdict": "bad" }, `✗ ${t("not_verified")}`, h("span", { class: "reason" }, t("batch_missing"))));
    return out;
  }
  const s = b.state;
  out.push(h("h1", {}, `${s.product.name} · ${t("lot")} ${s.lot}`));
  const recalls = recallsAffecting(p, name);
  for (const r of recalls) {
    const rb = p.batches.get(r.batch)!;
    const ev = rb.events.find((e) => e.id === r.recall);
    const reason = ev && ev.body.kind === "recall" ? ev.body.reason : "";
    out.push(
      h(
        "div",
        { class: "recall", role: "alert", "data-recall": r.batch },
        h("strong", {}, r.batch === name ? t("recalled_this") : `${t("recalled_upstream")} ${r.batch}`),
        reason ? h("span", { class: "reason" }, reason) : null,
      ),
    );
  }
  const complete = p.missing.size === 0;
  const asOf = new Date(a.headerTimeMs).toISOString().replace("T", " ").slice(0, 16) + " UTC";
  out.push(
    h(
      "div",
      // A partial answer is not all clear: a recall could be in what it leaves out.
      { class: complete ? "verdict ok" : "verdict partial", "data-verdict": complete ? "ok" : "partial" },
      `✓ ${t("verified")} · ${t("final_at")} ${p.finalFrom} (${asOf})`,
      h("span", { class: "reason" }, `${source} ${toHex(a.anchor.genesis.hash).slice(0, 16)}… · ${complete ? t("complete") : `${t("partial_recalls")}: ${[...p.missing].join(", ")}`}`),
    ),
  );
  if (a.anchor.source === "node") out.push(h("p", { class: "warn" }, t("anchor_node_warn")));
  if (a.older !== null) out.push(h("p", { class: "warn" }, `${t("stale")} ${a.older}.`));
  else if (Date.now() - a.headerTimeMs > STALE_MS) out.push(h("p", { class: "warn" }, `${t("old_header")} ${asOf}.`));
  const first = b.events[0]?.body;
  out.push(
    h(
      "div",
      { class: "card" },
      facts([
        [t("batch"), name],
        [t("product"), [s.product.name, s.product.gtin ? `GTIN ${s.product.gtin}` : "", s.product.drugCode ? `${t("drug_code")} ${s.product.drugCode}` : ""].filter(Boolean).join(" · ")],
        [t("lot"), s.lot],
        [t("domain"), s.domain],
        [t("made_by"), party(s.createdBy, n)],
        [t("origin"), first && first.kind === "commission" ? first.origin : s.parents.join(", ")],
        [t("made_amount"), amount(b.amountsWithheld ? null : (s.createdAmount ?? null), s.uom, t("hidden"))],
        [t("holders"), holders(b, n)],
      ]),
    ),
  );
  out.push(h("h2", {}, t("timeline")));
  out.push(table([t("when"), t("what"), t("who"), t("details")], b.events.map((e) => [eventTime(e.body.time), t(KIND_WORDS[e.body.kind]!), who(e, n), detail(e, b, n)]), "timeline"));
  out.push(h("h2", {}, t("transfers")));
  out.push(
    b.transfers.length === 0
      ? h("p", { class: "muted" }, t("no_transfers"))
      : table(
          [t("from"), t("to"), t("quantity"), t("shipped"), t("received")],
          b.transfers.map((x) => [party(x.from, n), party(x.to, n), amount(x.amount, s.uom, t("hidden")), eventTime(x.shippedAt), x.receivedAt ? eventTime(x.receivedAt) : t("not_acknowledged")]),
        ),
  );
  const inspections = b.events.filter((e) => e.body.kind === "inspect");
  out.push(h("h2", {}, t("inspections")));
  out.push(inspections.length === 0 ? h("p", { class: "muted" }, t("no_inspections")) : table([t("when"), t("who"), t("details")], inspections.map((e) => [eventTime(e.body.time), who(e, n), detail(e, b, n)])));
  const upstream = walk(p, name, "origins");
  out.push(h("h2", {}, t("upstream")));
  out.push(upstream.length === 0 ? h("p", { class: "muted" }, t("none")) : table([t("batch"), t("product"), t("made_by"), t("recall")], upstream.map((u) => [link(u.state.batch), u.state.product.name, party(u.state.createdBy, n), u.state.recalled ? t("recalled") : "—"])));
  const downstream = walk(p, name, "products");
  out.push(h("h2", {}, recalls.length > 0 ? t("recall_reach") : t("downstream")));
  const reach = [b, ...downstream];
  out.push(table([t("batch"), t("product"), t("holders")], reach.map((d) => [link(d.state.batch), d.state.product.name, holders(d, n)]), "reach"));
  const file = new Blob([a.bundle], { type: "application/json" });
  out.push(h("p", {}, h("a", { href: URL.createObjectURL(file), download: `${name}.provenance.json`, id: "bundle" }, t("download_bundle"))));
  out.push(h("p", {}, h("a", { href: `/web/label/${encodeURIComponent(name)}`, target: "_blank", id: "label" }, t("print_label"))));
  return out;
}

function link(batch: string): HTMLElement {
  return h("a", { href: `#/batch/${encodeURIComponent(batch)}` }, batch);
}
