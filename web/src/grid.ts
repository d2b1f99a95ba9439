// The results grid: role "grid" with aria-rowcount, only the rows on screen in the DOM
// (lib/windowing.ts decides which), so 10,000 rows scroll like 40.

import { h } from "./dom";
import { rowWindow } from "./lib/windowing";

export const ROW_HEIGHT = 28;

export function cellText(v: unknown): string {
  if (v === null || v === undefined) return "NULL";
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

export function resultGrid(columns: { name: string; type: string }[], rows: unknown[][], label: string): HTMLElement {
  const colWidths = columns.map((c) => Math.min(Math.max(c.name.length, c.type.length, 6) * 8 + 24, 320));
  const template = colWidths.map((w) => `${w}px`).join(" ");
  const width = colWidths.reduce((a, b) => a + b, 0) + 64;

  const header = h(
    "div",
    { role: "row", class: "grid-row grid-head", "aria-rowindex": "1" },
    h("div", { role: "columnheader", class: "grid-cell rownum", "aria-colindex": "1" }, "#"),
    columns.map((c, i) =>
      h("div", { role: "columnheader", class: "grid-cell", "aria-colindex": String(i + 2), title: c.type }, h("span", {}, c.name), h("span", { class: "coltype" }, c.type)),
    ),
  );
  const body = h("div", { class: "grid-body", role: "rowgroup" });
  const spacer = h("div", { class: "grid-spacer" });
  const viewport = h(
    "div",
    {
      role: "grid",
      class: "grid",
      "aria-label": label,
      "aria-rowcount": String(rows.length + 1),
      "aria-colcount": String(columns.length + 1),
      "aria-readonly": "true",
      tabindex: "0",
    },
    h("div", { role: "rowgroup", class: "grid-header" }, header),
    spacer,
  );
  spacer.append(body);
  const styleRow = (el: HTMLElement) => {
    el.style.gridTemplateColumns = `56px ${template}`;
    el.style.width = `${width}px`;
  };
  styleRow(header);

  let last = "";
  const paint = () => {
    const w = rowWindow(viewport.scrollTop, viewport.clientHeight - ROW_HEIGHT, ROW_HEIGHT, rows.length);
    const key = `${w.start}:${w.end}`;
    if (key === last) return;
    last = key;
    spacer.style.height = `${w.total}px`;
    spacer.style.width = `${width}px`;
    body.style.transform = `translateY(${w.offset}px)`;
    const frag = document.createDocumentFragment();
    for (let r = w.start; r < w.end; r++) {
      const row = rows[r]!;
      const el = h("div", { role: "row", class: "grid-row", "aria-rowindex": String(r + 2) });
      styleRow(el);
      el.append(h("div", { role: "rowheader", class: "grid-cell rownum", "aria-colindex": "1" }, String(r + 1)));
      for (let c = 0; c < columns.length; c++) {
        const v = row[c];
        el.append(h("div", { role: "gridcell", class: v === null ? "grid-cell null" : "grid-cell", "aria-colindex": String(c + 2) }, cellText(v)));
      }
      frag.append(el);
    }
    body.replaceChildren(frag);
  };
  let scheduled = false;
  viewport.addEventListener("scroll", () => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      paint();
    });
  });
  new ResizeObserver(() => {
    last = "";
    paint();
  }).observe(viewport);
  viewport.addEventListener("keydown", (e) => {
    const page = viewport.clientHeight - ROW_HEIGHT * 2;
    const moves: Record<string, number> = { ArrowDown: ROW_HEIGHT, ArrowUp: -ROW_HEIGHT, PageDown: page, PageUp: -page };
    if (e.key in moves) {
      viewport.scrollTop += moves[e.key]!;
      e.preventDefault();
    } else if (e.key === "Home" && e.ctrlKey) {
      viewport.scrollTop = 0;
      e.preventDefault();
    } else if (e.key === "End" && e.ctrlKey) {
      viewport.scrollTop = viewport.scrollHeight;
      e.preventDefault();
    }
  });
  requestAnimationFrame(paint);
  return viewport;
}
