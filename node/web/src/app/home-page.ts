// The first page: look up a batch (what a label's code opens directly) or an enterprise.

import { h } from "./dom.js";
import { t } from "./i18n.js";

export function homePage(root: HTMLElement): void {
  const input = h("input", { id: "batch-id", name: "batch", required: "", autocomplete: "off", placeholder: t("batch_id") });
  const form = h("form", { class: "lookup", id: "lookup-batch" }, input, h("button", { type: "submit" }, t("open")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = `#/batch/${encodeURIComponent(input.value.trim())}`;
  });
  const uscc = h("input", { id: "uscc", name: "uscc", required: "", autocomplete: "off", placeholder: t("uscc") });
  const byUscc = h("form", { class: "lookup", id: "lookup-enterprise" }, uscc, h("button", { type: "submit" }, t("open_enterprise")));
  byUscc.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = `#/enterprise/${encodeURIComponent(uscc.value.trim())}`;
  });
  root.replaceChildren(
    h("h1", {}, t("home_title")),
    h("p", {}, t("home_intro")),
    h("label", { for: "batch-id" }, t("batch_id")),
    form,
    h("label", { for: "uscc" }, t("uscc")),
    byUscc,
  );
}
