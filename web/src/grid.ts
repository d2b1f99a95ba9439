// The results grid: role "grid", only the rows on screen (and a few either side) in the DOM
// (lib/windowing.ts decides which), so 10,000 rows scroll like 40. Rows may keep arriving after
// the grid is shown (`append`); the row elements are made once and reused as the window moves,
// only their text changing, so a scroll step creates no nodes and leaves no garbage.

import { h } from "./dom";
import { rowWindow } from "./lib/windowing";

export const ROW_HEIGHT = 28;
/** Rows rendered beyond each edge of the viewport. */
const OVERSCAN = 3;
/** A cell shows at most this many characters of its value (a column is at most 320 px wide):
 * text is measured whole to place its ellipsis, so a huge value would cost every paint. */
const SHOWN_CHARS = 1000;
/** While rows stream in below the screen, how often the scroll range follows them. */
const LENGTHEN_MS = 100;

/** How the result the grid shows ended: still arriving, whole, cut at the row limit, or broken off. */
export type GridState = "loading" | "complete" | "truncated" | "incomplete";

export interface ResultGrid {
  readonly element: HTMLElement;
  /** Rows received so far. */
  readonly rowCount: number;
  /** Adds rows at the end; they are painted on the next frame if they are on screen. */
  append(rows: unknown[][]): void;
  /** Marks the result as ended, and how. */
  finish(state: Exclude<GridState, "loading">): void;
}

export function cellText(v: unknown): string {
  if (v === null || v === undefined) return "NULL";
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

/** One rendered row: its element, and the text nodes its content goes into. */
interface Slot {
  el: HTMLElement;
  num: Text;
  cells: HTMLElement[];
  texts: Text[];
  /** The result row shown, or -1. */
  index: number;
}

export function resultGrid(columns: { name: string; type: string }[], label: string): ResultGrid {
  const colWidths = columns.map((c) => Math.min(Math.max(c.name.length, c.type.length, 6) * 8 + 24, 320));
  const width = colWidths.reduce((a, b) => a + b, 0) + 56;
  const rows: unknown[][] = [];
  let state: GridState = "loading";

  const header = h(
    "div",
    { role: "row", class: "grid-row grid-head", "aria-rowindex": "1" },
    h("div", { role: "columnheader", class: "grid-cell rownum", "aria-colindex": "1" }, "#"),
    columns.map((c, i) =>
      h("div", { role: "columnheader", class: "grid-cell", "aria-colindex": String(i + 2), title: c.type }, h("span", {}, c.name), h("span", { class: "coltype" }, c.type)),
    ),
  );
  const body = h("div", { class: "grid-body", role: "rowgroup" });
  const spacer = h("div", { class: "grid-spacer" }, body);
  const viewport = h(
    "div",
    {
      role: "grid",
      class: "grid",
      "aria-label": label,
      // Unknown until the last row has arrived.
      "aria-rowcount": "-1",
      "aria-colcount": String(columns.length + 1),
      "aria-readonly": "true",
      "aria-busy": "true",
      "data-state": state,
      tabindex: "0",
    },
    h("div", { role: "rowgroup", class: "grid-header" }, header),
    spacer,
  );
  viewport.style.setProperty("--grid-width", `${width}px`);
  const sized = (cell: HTMLElement, c: number) => {
    cell.style.width = `${c < 0 ? 56 : colWidths[c]!}px`;
    return cell;
  };
  header.childNodes.forEach((cell, i) => sized(cell as HTMLElement, i - 1));

  const slots: Slot[] = [];
  const makeSlot = (): Slot => {
    const num = document.createTextNode("");
    const el = h("div", { role: "row", class: "grid-row" }, sized(h("div", { role: "rowheader", class: "grid-cell rownum", "aria-colindex": "1" }, num), -1));
    const cells: HTMLElement[] = [];
    const texts: Text[] = [];
    for (let c = 0; c < columns.length; c++) {
      const text = document.createTextNode("");
      const cell = sized(h("div", { role: "gridcell", class: "grid-cell", "aria-colindex": String(c + 2) }, text), c);
      cells.push(cell);
      texts.push(text);
      el.append(cell);
    }
    return { el, num, cells, texts, index: -1 };
  };
  const fill = (slot: Slot, r: number) => {
    const row = rows[r]!;
    slot.index = r;
    slot.el.setAttribute("aria-rowindex", String(r + 2));
    slot.num.data = String(r + 1);
    for (let c = 0; c < columns.length; c++) {
      const v = row[c];
      const isNull = v === null || v === undefined;
      const cell = slot.cells[c]!;
      if (cell.classList.contains("null") !== isNull) cell.classList.toggle("null", isNull);
      const text = cellText(v);
      slot.texts[c]!.data = text.length > SHOWN_CHARS ? `${text.slice(0, SHOWN_CHARS)}…` : text;
    }
  };

  let shownStart = -1;
  let height = -1;
  const paint = () => {
    const w = rowWindow(viewport.scrollTop, viewport.clientHeight - ROW_HEIGHT, ROW_HEIGHT, rows.length, OVERSCAN);
    if (w.total !== height) {
      height = w.total;
      spacer.style.height = `${w.total}px`;
    }
    const count = w.end - w.start;
    while (slots.length < count) {
      const slot = makeSlot();
      slots.push(slot);
      body.append(slot.el);
    }
    while (slots.length > count) slots.pop()!.el.remove();
    let moved = false;
    for (let k = 0; k < count; k++) {
      const slot = slots[k]!;
      if (slot.index !== w.start + k) {
        fill(slot, w.start + k);
        moved = true;
      }
    }
    if (w.start !== shownStart) {
      shownStart = w.start;
      body.style.transform = `translateY(${w.offset}px)`;
    }
    // A selection in rows whose content was just replaced would now cover other rows' text.
    if (moved) {
      const sel = document.getSelection();
      if (sel && sel.rangeCount && (body.contains(sel.anchorNode) || body.contains(sel.focusNode))) sel.removeAllRanges();
    }
  };

  let scheduled = false;
  let lengthening = false;
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      paint();
    });
  };
  viewport.addEventListener("scroll", schedule);
  new ResizeObserver(schedule).observe(viewport);
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

  return {
    element: viewport,
    get rowCount() {
      return rows.length;
    },
    append(more) {
      if (state !== "loading") return;
      const before = rows.length;
      for (const row of more) rows.push(row);
      // Rows that land on screen are painted on the next frame; rows below it only lengthen the
      // scroll range, which is done a few times a second while they stream in.
      if (before < shownStart + slots.length + 1 || slots.length === 0) schedule();
      else if (!lengthening) {
        lengthening = true;
        window.setTimeout(() => {
          lengthening = false;
          schedule();
        }, LENGTHEN_MS);
      }
    },
    finish(end) {
      if (state !== "loading") return;
      state = end;
      viewport.dataset.state = end;
      viewport.removeAttribute("aria-busy");
      if (end === "incomplete") {
        // Not the whole result: the count of rows is not known, and the name says so.
        viewport.setAttribute("aria-label", `${label} (incomplete)`);
      } else {
        viewport.setAttribute("aria-rowcount", String(rows.length + 1));
      }
      schedule();
    },
  };
}
