import { ApiError, csrfToken, errorOf, get, headers, networkError } from "../api";
import { formatAgo, h } from "../dom";
import { sqlEditor } from "../editor";
import { ResultGrid, resultGrid } from "../grid";
import { offsetOfPosition } from "../lib/position";
import { readResult, ResultTail } from "../lib/resultStream";
import { Catalog, CatalogSnapshot, SourceView } from "../types";
import { busy, describe } from "./common";

interface HistoryEntry {
  id: number;
  at: number;
  sql: string;
  duration_ms: number | null;
  rows: number | null;
  outcome: string | null;
}

const DRAFT_KEY = (id: string) => `sluice.sql.${id}`;

export async function queryPage(id: string): Promise<HTMLElement> {
  const source = await get<SourceView>(`/sources/${encodeURIComponent(id)}`);
  let catalog: Catalog | null = null;
  try {
    catalog = (await get<CatalogSnapshot>(`/sources/${encodeURIComponent(id)}/catalog`)).catalog;
  } catch {
    // Not discovered yet: the editor works without completion.
  }

  const editorHost = h("div", { class: "editor" });
  const runButton = h("button", { type: "button" }, "Run");
  const cancelButton = h("button", { type: "button", class: "secondary", disabled: true }, "Cancel");
  const status = h("p", { role: "status", "aria-live": "polite", class: "status-line" });
  // The count of rows while they arrive: shown, not announced (the status says how it ended).
  const progress = h("p", { class: "status-line muted small" });
  const errorArea = h("div");
  const results = h("div", { class: "results" });
  const exportBar = h("div", { class: "export-bar", role: "group", "aria-label": "Export" });

  let controller: AbortController | null = null;
  let draft = "";
  try {
    draft = localStorage.getItem(DRAFT_KEY(id)) ?? "";
  } catch {
    // Storage may be off; start empty.
  }

  const run = async () => {
    if (controller) return;
    editor.closeCompletion();
    const text = editor.text();
    if (!text.trim()) {
      status.textContent = "Write a statement first.";
      return;
    }
    try {
      localStorage.setItem(DRAFT_KEY(id), text);
    } catch {
      // Not kept; nothing else depends on it.
    }
    editor.markError(null);
    errorArea.replaceChildren();
    const mine = new AbortController();
    controller = mine;
    busy(runButton, true);
    cancelButton.disabled = false;
    status.textContent = "Running…";
    const started = performance.now();
    // The rows are painted as they arrive: the grid appears with the result's head and grows.
    let grid = null as ResultGrid | null;
    let shownAt = 0;
    const counted = () => (grid ? grid.rowCount : 0);
    // The count as rows arrive, a few times a second (each update is a layout and a paint).
    const showProgress = () => {
      const now = performance.now();
      if (now - shownAt < 100) return;
      shownAt = now;
      const n = counted();
      progress.textContent = `${n.toLocaleString()} ${n === 1 ? "row" : "rows"} so far…`;
    };
    try {
      const response = await fetch(`/api/v1/sources/${encodeURIComponent(id)}/query`, {
        method: "POST",
        credentials: "same-origin",
        headers: headers("POST", { "Content-Type": "application/json" }),
        body: JSON.stringify({ sql: text, format: "json" }),
        signal: mine.signal,
      }).catch((e) => {
        throw networkError(e);
      });
      if (!response.ok) throw await errorOf(response);
      // A new result is coming: the last one goes, so it is never taken for this one's.
      results.replaceChildren();
      if (!response.body) throw new ApiError(0, { code: "incomplete", message: "The browser gave no way to read the result as it arrives." });
      let tail: ResultTail;
      try {
        tail = await readResult(
          response.body,
          (columns) => {
            grid = resultGrid(columns, "Query results");
            results.replaceChildren(grid.element);
          },
          (rows) => {
            grid?.append(rows);
            showProgress();
          },
        );
      } catch (e) {
        grid?.finish("incomplete");
        if (mine.signal.aborted) throw networkError(e);
        const n = counted();
        throw new ApiError(0, {
          code: "incomplete",
          message: `The result is incomplete: the query failed after ${n.toLocaleString()} ${n === 1 ? "row" : "rows"} had been sent, and only those are shown.`,
          hint: "Run it again; if it keeps failing, the audit log has the error.",
        });
      }
      const ms = Math.round(performance.now() - started);
      const n = counted();
      if (!grid) throw new ApiError(0, { code: "incomplete", message: "The result named no columns." });
      grid.finish(tail.truncated ? "truncated" : "complete");
      progress.textContent = "";
      const notes: HTMLElement[] = [];
      if (tail.truncated)
        notes.push(h("p", { class: "notice warn" }, `Only the first ${n.toLocaleString()} rows are shown. Export the result for all of them.`));
      if (tail.truncated_columns?.length)
        notes.push(h("p", { class: "notice warn" }, `Long values were cut in: ${tail.truncated_columns.join(", ")}.`));
      if (tail.lossy_columns?.length)
        notes.push(h("p", { class: "notice warn" }, `Some text was not valid UTF-8 in: ${tail.lossy_columns.join(", ")}.`));
      results.prepend(...notes);
      status.textContent = `${n.toLocaleString()} ${n === 1 ? "row" : "rows"}${tail.truncated ? " (truncated)" : ""} in ${ms.toLocaleString()} ms.`;
    } catch (e) {
      const d = describe(e);
      progress.textContent = "";
      if (d.code === "aborted") {
        const n = counted();
        status.textContent = grid
          ? `Cancelled after ${n.toLocaleString()} ${n === 1 ? "row" : "rows"}; the result shown is incomplete. The statement was stopped on the server.`
          : "Cancelled. The statement was stopped on the server.";
      } else {
        status.textContent = d.code === "incomplete" ? "The query failed while its rows were being sent; the result shown is incomplete." : "The query failed.";
        errorArea.replaceChildren(
          h(
            "div",
            { class: "notice fail", role: "alert" },
            h("p", { class: "msg" }, d.message, d.sqlstate ? h("span", { class: "small muted" }, ` (SQLSTATE ${d.sqlstate})`) : null),
            d.hint ? h("p", { class: "hint" }, d.hint) : null,
            d.position ? h("p", { class: "small" }, `At character ${d.position}; marked in the editor.`) : null,
          ),
        );
        if (d.position) editor.markError(offsetOfPosition(text, d.position));
      }
    } finally {
      if (controller === mine) controller = null;
      busy(runButton, false);
      cancelButton.disabled = true;
      void loadHistory();
    }
  };

  const historyList = h("ol", { class: "history-list" });
  const loadHistory = async () => {
    try {
      const page = await get<{ queries: HistoryEntry[] }>(`/me/queries?source=${encodeURIComponent(id)}&limit=20`);
      historyList.replaceChildren();
      for (const q of page.queries) {
        const use = h("button", { type: "button", class: "history-item", title: q.sql }, h("code", {}, q.sql.length > 160 ? `${q.sql.slice(0, 160)}…` : q.sql),
          h("span", { class: "small muted" }, `${formatAgo(q.at)} · ${q.outcome ?? "running"}${q.rows !== null ? ` · ${q.rows} rows` : ""}${q.duration_ms !== null ? ` · ${q.duration_ms} ms` : ""}`));
        use.addEventListener("click", () => {
          editor.view.dispatch({ changes: { from: 0, to: editor.view.state.doc.length, insert: q.sql } });
          editor.focus();
        });
        historyList.append(h("li", {}, use));
      }
      if (!page.queries.length) historyList.append(h("li", { class: "muted small" }, "Your queries on this source appear here."));
    } catch {
      historyList.replaceChildren(h("li", { class: "muted small" }, "The history could not be loaded."));
    }
  };
  void loadHistory();

  // Exports are the browser's own streamed downloads: a form POST into a hidden frame (the API
  // takes the CSRF token as a form field for this), so no result is ever held in this page.
  const frameName = `export-${Math.random().toString(36).slice(2)}`;
  const frame = h("iframe", { name: frameName, title: "Export", class: "visually-hidden", tabindex: "-1", "aria-hidden": "true" });
  frame.addEventListener("load", () => {
    // A download loads nothing here; an error answer (JSON) does: show its message and hint.
    let text = "";
    try {
      text = frame.contentDocument?.body?.textContent ?? "";
    } catch {
      return;
    }
    if (!text.trim()) return;
    try {
      const body = JSON.parse(text) as { error?: { message: string; hint?: string | null; position?: number | null } };
      if (body.error) {
        status.textContent = "The export failed.";
        errorArea.replaceChildren(h("div", { class: "notice fail", role: "alert" }, h("p", {}, body.error.message), body.error.hint ? h("p", { class: "hint" }, body.error.hint) : null));
        if (body.error.position) editor.markError(offsetOfPosition(editor.text(), body.error.position));
      }
    } catch {
      // Not an error document.
    }
  });
  const exportAs = (format: string) => {
    const text = editor.text();
    if (!text.trim()) {
      status.textContent = "Write a statement first.";
      return;
    }
    errorArea.replaceChildren();
    const form = h("form", { method: "post", action: `/api/v1/sources/${encodeURIComponent(id)}/query`, target: frameName, enctype: "application/x-www-form-urlencoded", class: "visually-hidden" },
      h("input", { type: "hidden", name: "sql", value: text }),
      h("input", { type: "hidden", name: "format", value: format }),
      h("input", { type: "hidden", name: "csrf_token", value: csrfToken() }));
    document.body.append(form);
    form.submit();
    form.remove();
    status.textContent = `Export as ${format.toUpperCase()} started: your browser saves it as it streams.`;
  };
  for (const [format, label] of [["csv", "Export CSV"], ["json", "Export JSON"], ["arrow", "Export Arrow"], ["parquet", "Export Parquet"]] as const) {
    const b = h("button", { type: "button", class: "secondary small" }, label);
    b.addEventListener("click", () => exportAs(format));
    exportBar.append(b);
  }
  exportBar.append(frame);

  const editor = sqlEditor(editorHost, catalog, () => void run(), draft);
  runButton.addEventListener("click", () => void run());
  cancelButton.addEventListener("click", () => {
    controller?.abort();
    status.textContent = "Cancelling…";
  });

  return h(
    "section",
    { class: "workspace" },
    h("div", { class: "page-head" }, h("h1", {}, `Query ${source.name}`), h("span", { class: "muted small" }, `${source.database} on ${source.host}`)),
    h("div", { class: "editor-wrap" }, h("label", { class: "visually-hidden", id: "sql-label" }, "SQL"), editorHost),
    h("div", { class: "form-actions" }, runButton, cancelButton, h("span", { class: "muted small keyhint" }, "Ctrl/Cmd+Enter runs"), exportBar),
    status,
    progress,
    errorArea,
    results,
    h("details", { class: "history" }, h("summary", {}, "Your recent queries"), historyList),
  );
}
