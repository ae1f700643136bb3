// A few lines of DOM building: elements with attributes and children, text always as
// text nodes (nothing from an answer is ever parsed as HTML).

type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

/** A definition list of facts: [term, value] pairs. */
export function facts(rows: [string, Child][]): HTMLDListElement {
  const dl = h("dl", { class: "facts" });
  for (const [k, v] of rows) dl.append(h("dt", {}, k), h("dd", {}, v));
  return dl;
}

export function hash(hex: string): HTMLElement {
  return h("code", { class: "hash" }, hex);
}
