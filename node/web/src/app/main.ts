// The pages every node serves at `/` (docs/web.md). Routing is by the URL's fragment,
// so a page's address never reaches the node's logs: #/verify.

import { currentLang, setLang, t } from "./i18n.js";
import { h } from "./dom.js";
import { verifyPage } from "./verify-page.js";
import { batchPage } from "./batch-page.js";
import { homePage } from "./home-page.js";
import { operatorPage } from "./operator-page.js";
import { enterprisePage } from "./enterprise-page.js";

/** The fragment's route: `#/batch/NAME?chain=HEX` gives ["batch", "NAME"] and the query. */
function parse(): { parts: string[]; query: URLSearchParams } {
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?", 2);
  const decode = (p: string) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return "\u0000"; // not percent-encoding: names no batch or enterprise
    }
  };
  return { parts: (path ?? "").split("/").map(decode), query: new URLSearchParams(query ?? "") };
}

type Route = { path: string; word: "nav_home" | "nav_verify" | "nav_operator" | null; show: (root: HTMLElement, parts: string[], q: URLSearchParams) => void };

const ROUTES: Route[] = [
  { path: "", word: "nav_home", show: (root) => homePage(root) },
  { path: "batch", word: null, show: (root, parts, q) => batchPage(root, parts[1] ?? "", q.get("chain")) },
  { path: "enterprise", word: null, show: (root, parts, q) => enterprisePage(root, parts[1] ?? "", q.get("chain")) },
  { path: "verify", word: "nav_verify", show: (root) => verifyPage(root) },
  { path: "operator", word: "nav_operator", show: (root) => operatorPage(root) },
];

function route(): void {
  const page = document.getElementById("page")!;
  const { parts, query } = parse();
  const r = ROUTES.find((x) => x.path === parts[0]);
  const nav = document.getElementById("nav")!;
  nav.replaceChildren(
    ...ROUTES.filter((x) => x.word !== null).map((x) => h("a", { href: `#/${x.path}`, class: x === r ? "here" : "" }, t(x.word!))),
  );
  document.getElementById("lang")!.textContent = t("lang_other");
  document.getElementById("footer")!.textContent = t("footer");
  if (r) r.show(page, parts, query);
  else page.replaceChildren(h("p", {}, t("not_found")));
}

function start(): void {
  setLang(currentLang());
  document.getElementById("lang")!.addEventListener("click", () => {
    setLang(currentLang() === "zh" ? "en" : "zh");
    route();
  });
  window.addEventListener("hashchange", route);
  route();
}

start();
