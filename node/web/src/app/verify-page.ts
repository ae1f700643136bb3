// The verify page: a genesis file and a proof bundle, dropped or chosen, checked here
// with no network, exactly as `xinlian verify --genesis GENESIS FILE` does.

import { toHex } from "../verify/bytes.js";
import { type Genesis, genesisFromToml } from "../verify/genesis.js";
import { type Verdict, type VerifiedRecord, verdictOf } from "../verify/verify.js";
import { PROVENANCE_BUNDLE_FORMAT, provenanceVerdictOf, recallsAffecting } from "../verify/provenance.js";
import { CREDIT_REPORT_FORMAT, creditVerdictOf } from "../verify/credit.js";
import { facts, h, hash } from "./dom.js";
import { t } from "./i18n.js";
import { rememberGenesis } from "./node-api.js";

interface Loaded {
  genesis: { name: string; value: Genesis | Error } | null;
  bundle: { name: string; text: string } | null;
}

const loaded: Loaded = { genesis: null, bundle: null };

export function verifyPage(root: HTMLElement): void {
  const result = h("div", { id: "verdict", "aria-live": "polite" });
  const status = h("div", { class: "card", id: "loaded" });
  const input = h("input", { type: "file", id: "files", multiple: "", accept: ".toml,.json,application/json" });
  const drop = h("div", { class: "drop", id: "drop" }, h("p", {}, t("drop_here")), input);
  const refresh = () => {
    const kept = loaded.genesis && !(loaded.genesis.value instanceof Error);
    const forget = h("button", { type: "button", id: "forget" }, t("forget"));
    forget.addEventListener("click", () => {
      rememberGenesis(null);
      loaded.genesis = null;
      refresh();
    });
    status.replaceChildren(
      facts([
        [t("genesis_file"), loaded.genesis ? loaded.genesis.name : h("span", { class: "muted" }, t("not_loaded"))],
        [t("bundle_file"), loaded.bundle ? loaded.bundle.name : h("span", { class: "muted" }, t("not_loaded"))],
      ]),
      kept ? h("p", { class: "muted" }, t("remembered"), " ", forget) : "",
    );
    result.replaceChildren(render());
  };
  const take = async (files: FileList | null) => {
    for (const f of Array.from(files ?? [])) await load(f);
    refresh();
  };
  input.addEventListener("change", () => void take(input.files));
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    void take(e.dataTransfer?.files ?? null);
  });
  root.replaceChildren(h("h1", {}, t("verify_title")), h("p", {}, t("verify_intro")), drop, status, result);
  refresh();
}

/** A file is a genesis file if it reads as TOML with a chain id, else a bundle. */
async function load(f: File): Promise<void> {
  const text = await f.text();
  if (f.name.endsWith(".toml") || /^\s*chain_id\s*=/m.test(text)) {
    let value: Genesis | Error;
    try {
      value = genesisFromToml(text);
      rememberGenesis(text);
    } catch (e) {
      value = e as Error;
    }
    loaded.genesis = { name: f.name, value };
  } else {
    loaded.bundle = { name: f.name, text };
  }
}

function render(): Node {
  const genesis = loaded.genesis?.value;
  if (genesis instanceof Error) return verdictBox({ verified: false, reason: genesis.message });
  if (!genesis || !loaded.bundle) return h("p", { class: "muted" }, t("need_both"));
  if (loaded.bundle.text.includes(`"${CREDIT_REPORT_FORMAT}"`)) {
    const box = h("div", {}, h("p", { class: "muted" }, t("verifying")));
    void creditBox(genesis, loaded.bundle.text).then((n) => box.replaceChildren(n));
    return box;
  }
  if (loaded.bundle.text.includes(`"${PROVENANCE_BUNDLE_FORMAT}"`)) {
    const box = h("div", {}, h("p", { class: "muted" }, t("verifying")));
    void provenanceBox(genesis, loaded.bundle.text).then((n) => box.replaceChildren(n));
    return box;
  }
  return verdictBox(verdictOf(genesis, loaded.bundle.text), genesis);
}

export function verdictBox(v: Verdict, genesis?: Genesis): Node {
  if (!v.verified)
    return h("div", { class: "verdict bad", "data-verdict": "bad" }, `✗ ${t("not_verified")}`, h("span", { class: "reason" }, v.reason));
  return h(
    "div",
    {},
    h("div", { class: "verdict ok", "data-verdict": "ok" }, `✓ ${t("verified")}`),
    h("div", { class: "card" }, recordFacts(v.record, genesis), h("p", { class: "muted" }, t("what_proven"))),
  );
}

/** A provenance bundle (the batch page's download, `xinlian trace --bundle`). */
async function provenanceBox(genesis: Genesis, text: string): Promise<Node> {
  const v = await provenanceVerdictOf(genesis, text);
  if (!v.verified) return verdictBox(v);
  const p = v.provenance;
  const root = p.batches.get(p.root);
  const recalls = recallsAffecting(p, p.root);
  const events = [...p.batches.values()].reduce((n, b) => n + b.events.length, 0);
  return h(
    "div",
    {},
    h("div", { class: "verdict ok", "data-verdict": "ok" }, `✓ ${t("verified")}`),
    recalls.length > 0
      ? h("div", { class: "recall", role: "alert" }, h("strong", {}, recalls.map((r) => `${t("recalled")}: ${r.batch}`).join("; ")))
      : null,
    h(
      "div",
      { class: "card" },
      facts([
        [t("chain"), hash(toHex(genesis.hash))],
        [t("batch"), p.root],
        [t("product"), root ? `${root.state.product.name} · ${t("lot")} ${root.state.lot}` : "—"],
        [t("final_at"), String(p.finalFrom)],
        [t("batches_events"), `${p.batches.size} / ${events}`],
        [t("complete_q"), p.missing.size === 0 ? t("complete") : `${t("partial")}: ${[...p.missing].join(", ")}`],
      ]),
      h("p", {}, h("a", { href: `#/batch/${encodeURIComponent(p.root)}` }, t("open_batch"))),
    ),
  );
}

/** A credit report (`xinlian credit --report`): the complete record and its grade. */
async function creditBox(genesis: Genesis, text: string): Promise<Node> {
  const v = await creditVerdictOf(genesis, text);
  if (!v.verified) return verdictBox(v);
  const c = v.credit;
  const day = (d: number) => new Date(d * 86_400_000).toISOString().slice(0, 10);
  const status = (s: string) => (s.startsWith("repaired_") ? t("st_repaired") : t(`st_${s === "pending" ? "open" : s}` as Parameters<typeof t>[0]));
  return h(
    "div",
    {},
    h("div", { class: "verdict ok", "data-verdict": "ok" }, `✓ ${t("verified")} · ${t("credit_report")}`),
    h(
      "div",
      { class: "card" },
      facts([
        [t("chain"), hash(toHex(genesis.hash))],
        [t("enterprise"), `${c.history.name} (${c.history.uscc})`],
        [t("final_at"), String(c.height)],
        [t("grade"), h("strong", { id: "report-grade" }, `${c.grade.grade} (${c.grade.score}) · ${day(c.grade.asOf)}`)],
        [t("grade_reasons"), [...c.grade.reasons, ...c.grade.caps].map((r) => `${r.rule} ${r.points >= 0 ? "+" : ""}${r.points}`).join("; ")],
        [t("commitments"), c.history.commitments.map((x) => `${x.matter}: ${status(x.status)}`).join("; ") || t("none")],
        [t("lists"), c.history.listings.map((l) => `${t(l.list === "reward" ? "list_reward" : "list_serious")} ${day(l.added.date)}–${day(l.until)}${l.removed ? ` (${t("list_remove")} ${day(l.removed.at.date)})` : ""}`).join("; ") || t("none")],
      ]),
      h("p", { class: "muted" }, t("credit_proven")),
    ),
  );
}

function recordFacts(r: VerifiedRecord, genesis?: Genesis): Node {
  const s = r.signer;
  const signer =
    s.type === "member"
      ? `${t("member")} ${s.id} (${t("roles")}: ${s.roles.join(", ")})`
      : s.type === "enterprise"
        ? `${t("enterprise")} ${s.uscc} (${t("registrar")}: ${s.registrar}; ${t("bound_by")} ${s.boundBy.map((b) => b.slice(0, 12)).join(" ← ")})`
        : `${t("custody")} ${toHex(r.record.signer)} (${t("domain")}: ${s.domain}; ${t("registrar")}: ${s.registrar})`;
  return facts([
    ...(genesis ? [[t("chain"), hash(toHex(genesis.hash))] as [string, Node]] : []),
    [t("record"), hash(r.id)],
    [t("kind"), r.kind],
    [t("ledger_index"), String(r.ledgerIndex)],
    r.blockHeight !== null ? [t("block"), String(r.blockHeight)] : [t("final_at"), String(r.finalAt)],
    [t("checkpoint"), hash(r.checkpointHash)],
    [t("signer"), signer],
  ]);
}
