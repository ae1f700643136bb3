// The operator page: this node and the consortium at a glance. The recent blocks and
// who signed them are verified here (each certificate against the roster in force,
// followed from genesis); heights other nodes announced, the round, timeouts and the
// mempool are this node's reports, and shown as such.

import { toHex } from "../verify/bytes.js";
import { type Json, arr, obj } from "../verify/json.js";
import { type Checkpoint, LightClient, checkpointFromJson, headerHash, rosterChangesFromJson } from "../verify/verify.js";
import { fail } from "../verify/bytes.js";
import { facts, h } from "./dom.js";
import { t } from "./i18n.js";
import { anchor, ask, parseJson } from "./node-api.js";

const RECENT = 10;

interface Report {
  node: string;
  validator: boolean;
  height: number;
  mempool: number;
  round: number | null;
  syncingTo: number | null;
  peers: { member: string; height: number }[];
}

function report(v: Json): Report {
  const o = obj(v, "status");
  const n = (x: Json | undefined) => (typeof x === "number" ? x : null);
  return {
    node: String(o["node"] ?? ""),
    validator: o["validator"] === true,
    height: n(o["height"]) ?? 0,
    mempool: n(o["mempool_records"]) ?? 0,
    round: n(o["round"]),
    syncingTo: n(o["syncing_to"]),
    peers: arr(o["peers"] ?? [], "status.peers").map((p) => {
      const po = obj(p, "status.peers[]");
      return { member: String(po["member"] ?? ""), height: n(po["height"]) ?? 0 };
    }),
  };
}

/** Timeouts by step from the Prometheus exposition. */
function timeouts(metrics: string): string {
  const out: string[] = [];
  for (const line of metrics.split("\n")) {
    const m = /^xinlian_timeouts_total\{step="([a-z_]+)"\} (\d+)/.exec(line);
    if (m) out.push(`${m[1]} ${m[2]}`);
  }
  return out.join(", ") || "0";
}

export function operatorPage(root: HTMLElement): void {
  root.replaceChildren(h("h1", {}, t("operator_title")), h("p", { class: "muted" }, t("verifying")));
  const here = location.hash;
  load()
    .then((nodes) => {
      if (location.hash === here) root.replaceChildren(h("h1", {}, t("operator_title")), ...nodes);
    })
    .catch((e: Error) => {
      if (location.hash !== here) return;
      root.replaceChildren(
        h("h1", {}, t("operator_title")),
        h("div", { class: "verdict bad", "data-verdict": "bad" }, `✗ ${t("not_verified")}`, h("span", { class: "reason" }, e.message)),
      );
    });
}

async function load(): Promise<Node[]> {
  const a = await anchor(null);
  const client = new LightClient(a.genesis);
  const changes = (parseJson(await ask("/v1/rosters?after=1"), "roster changes") as { changes?: Json }).changes;
  client.acceptChanges(rosterChangesFromJson(changes, "roster changes"));
  const r = report(parseJson(await ask("/v1/status"), "status"));
  const metrics = await ask("/metrics").catch(() => "");
  const blocks: Checkpoint[] = [];
  for (let height = r.height; height >= 1 && blocks.length < RECENT; height--) {
    // Without record ids: every byte of the answer is then checked here.
    const b = obj(parseJson(await ask(`/v1/blocks/${height}?records=false`), "block"), "block");
    const cp = checkpointFromJson({ header: b["header"] ?? null, certificate: b["certificate"] ?? null }, `block ${height}`);
    client.checkCheckpoint(cp);
    if (cp.header.height !== height) fail(`asked for block ${height}, the answer is block ${cp.header.height}`);
    if (b["hash"] !== toHex(headerHash(cp.header))) fail(`block ${height}: the answer's hash is not its header's`);
    if (!Array.isArray(b["records"]) || b["records"].length !== 0) fail(`block ${height}: record ids given where none were asked for`);
    blocks.push(cp);
  }
  if (blocks.length === 0) fail(t("no_blocks"));
  const proposals = obj(parseJson(await ask("/v1/governance/proposals?status=open"), "proposals"), "proposals");
  const out: Node[] = [];
  out.push(
    h("div", { class: "verdict ok", "data-verdict": "ok" }, `✓ ${t("verified")}`, h("span", { class: "reason" }, `${t("blocks_verified")} ${blocks.length} · ${toHex(a.genesis.hash).slice(0, 16)}…`)),
  );
  if (a.source === "node") out.push(h("p", { class: "warn" }, t("anchor_node_warn")));
  out.push(h("h2", {}, t("this_node")));
  out.push(
    h(
      "div",
      { class: "card" },
      facts([
        [t("member"), `${r.node} (${r.validator ? "validator" : "observer"})`],
        [t("height"), String(r.height)],
        [t("round"), r.round === null ? "—" : String(r.round)],
        [t("mempool"), String(r.mempool)],
        [t("timeouts"), timeouts(metrics)],
        [t("syncing"), r.syncingTo === null ? t("in_step") : `→ ${r.syncingTo}`],
      ]),
      h("p", { class: "muted" }, t("reported")),
    ),
  );
  out.push(h("h2", {}, t("members_heights")));
  out.push(table([t("member"), t("height")], [[`${r.node} (${t("this_node")})`, String(r.height)], ...r.peers.map((p) => [p.member, String(p.height)])]));
  const latest = blocks[0];
  if (latest) {
    const vs = client.validatorsAt(latest.header.height);
    const signed = new Set(latest.certificate.signatures.map((s) => s.validator));
    out.push(h("h2", {}, `${t("latest_signers")} ${latest.header.height}`));
    out.push(table([t("validator"), t("power"), t("signed")], vs.map((v, i) => [v.member, String(v.power), signed.has(i) ? "✓" : "—"])));
  }
  out.push(h("h2", {}, t("recent_blocks")));
  out.push(
    table(
      [t("height"), t("when"), t("records"), t("proposer"), t("round"), t("signed")],
      blocks.map((cp) => {
        const vs = client.validatorsAt(cp.header.height);
        const proposer = vs.find((v) => toHex(v.key) === toHex(cp.header.proposer))?.member ?? toHex(cp.header.proposer).slice(0, 12);
        return [
          String(cp.header.height),
          new Date(cp.header.timeMs).toISOString().replace("T", " ").slice(0, 19) + " UTC",
          String(cp.header.recordsCount),
          proposer,
          String(cp.certificate.round),
          `${cp.certificate.signatures.length}/${vs.length}`,
        ];
      }),
    ),
  );
  out.push(h("h2", {}, t("open_proposals")), h("p", { class: "muted" }, t("proposals_reported")));
  const open = arr(proposals["proposals"] ?? [], "proposals");
  out.push(
    open.length === 0
      ? h("p", { class: "muted" }, t("none"))
      : table(
          [t("proposal"), t("approve"), t("reject"), t("total")],
          open.map((p) => {
            const po = obj(p, "proposal");
            return [String(po["summary"] ?? ""), String(po["approve_power"] ?? ""), String(po["reject_power"] ?? ""), String(po["total_power"] ?? "")];
          }),
        ),
  );
  return out;
}

function table(head: string[], rows: string[][]): HTMLElement {
  return h(
    "div",
    { class: "scroll" },
    h("table", {}, h("thead", {}, h("tr", {}, ...head.map((c) => h("th", {}, c)))), h("tbody", {}, ...rows.map((r) => h("tr", {}, ...r.map((c, i) => h("td", { "data-label": head[i] ?? "" }, c)))))),
  );
}
