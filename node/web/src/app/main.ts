// The pages every node serves at `/` (docs/web.md). Routing is by the URL's fragment,
// so a page's address never reaches the node's logs: #/verify.

import { currentLang, setLang, t } from "./i18n.js";
import { h } from "./dom.js";
import { verifyPage } from "./verify-page.js";

const ROUTES: { path: string; word: "nav_verify"; show: (root: HTMLElement) => void }[] = [
  { path: "verify", word: "nav_verify", show: verifyPage },
];

function route(): void {
  const page = document.getElementById("page")!;
  const path = location.hash.replace(/^#\/?/, "").split(/[/?]/)[0] || "verify";
  const r = ROUTES.find((x) => x.path === path);
  const nav = document.getElementById("nav")!;
  nav.replaceChildren(
    ...ROUTES.map((x) => h("a", { href: `#/${x.path}`, class: x === r ? "here" : "" }, t(x.word))),
  );
  document.getElementById("lang")!.textContent = t("lang_other");
  document.getElementById("footer")!.textContent = t("footer");
  if (r) r.show(page);
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
