import { get } from "../api";
import { field, formatTime, h } from "../dom";
import { navigate } from "../router";
import { busy, errorBox, input } from "./common";

interface AuditEntry {
  id: number;
  at: number;
  actor: string;
  kind: string;
  source: string | null;
  detail: Record<string, unknown>;
  sql: string | null;
  duration_ms: number | null;
  rows: number | null;
  outcome: string | null;
  error: string | null;
}

/** `datetime-local` text ↔ milliseconds since the epoch (local time). */
function toMs(local: string): number | null {
  if (!local) return null;
  const ms = new Date(local).getTime();
  return Number.isNaN(ms) ? null : ms;
}
function toLocal(ms: string | null): string {
  if (!ms || !/^\d+$/.test(ms)) return "";
  const d = new Date(Number(ms));
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export async function auditPage(query: URLSearchParams): Promise<HTMLElement> {
  const user = field("User", input({ name: "user", value: query.get("user") ?? "", placeholder: "login or token:id" }));
  const source = field("Source", input({ name: "source", value: query.get("source") ?? "" }));
  const kind = field("Kind", input({ name: "kind", value: query.get("kind") ?? "", placeholder: "query, source.create, …", list: "audit-kinds" }));
  const from = field("From", h("input", { type: "datetime-local", name: "from", value: toLocal(query.get("from")) }));
  const to = field("To", h("input", { type: "datetime-local", name: "to", value: toLocal(query.get("to")) }));
  const kinds = h("datalist", { id: "audit-kinds" },
    ["query", "sign_in", "sign_in.failed", "sign_out", "source.create", "source.update", "source.delete", "source.host_key_approved", "user.create", "user.disable", "token.create", "token.revoke"].map((k) => h("option", { value: k })));
  const apply = h("button", { type: "submit" }, "Filter");
  const filters = h("form", { class: "filters", role: "search", "aria-label": "Audit filters" }, user.row, source.row, kind.row, from.row, to.row, kinds, h("div", { class: "form-actions" }, apply));

  const params = (): URLSearchParams => {
    const p = new URLSearchParams();
    if (user.input.value.trim()) p.set("user", user.input.value.trim());
    if (source.input.value.trim()) p.set("source", source.input.value.trim());
    if (kind.input.value.trim()) p.set("kind", kind.input.value.trim());
    const f = toMs(from.input.value);
    const t = toMs(to.input.value);
    if (f !== null) p.set("from", String(f));
    if (t !== null) p.set("to", String(t));
    return p;
  };
  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    const p = params().toString();
    navigate(`/audit${p ? `?${p}` : ""}`);
  });

  const tbody = h("tbody");
  const box = h("div");
  const more = h("button", { type: "button", class: "secondary" }, "Load more");
  let cursor: number | null = null;
  const base = new URLSearchParams();
  for (const key of ["user", "source", "kind", "from", "to"]) {
    const v = query.get(key);
    if (v) base.set(key, v);
  }
  const load = async () => {
    busy(more, true);
    box.replaceChildren();
    try {
      const p = new URLSearchParams(base);
      p.set("limit", "100");
      if (cursor !== null) p.set("cursor", String(cursor));
      const page = await get<{ entries: AuditEntry[]; next: number | null }>(`/audit?${p}`);
      for (const e of page.entries) {
        const what = e.sql
          ? h("div", {}, h("code", { class: "sql-snippet" }, e.sql.length > 300 ? `${e.sql.slice(0, 300)}…` : e.sql),
              h("div", { class: "small muted" }, [e.outcome, e.rows !== null ? `${e.rows} rows` : null, e.duration_ms !== null ? `${e.duration_ms} ms` : null].filter(Boolean).join(" · ")),
              e.error ? h("div", { class: "small fail-text" }, e.error) : null)
          : h("code", { class: "small" }, Object.keys(e.detail ?? {}).length ? JSON.stringify(e.detail) : "");
        tbody.append(h("tr", {}, h("td", {}, h("time", {}, formatTime(e.at))), h("td", {}, e.actor), h("td", {}, e.kind), h("td", {}, e.source ?? ""), h("td", {}, what)));
      }
      cursor = page.next;
      more.hidden = page.next === null;
      if (tbody.children.length === 0) tbody.append(h("tr", {}, h("td", { colspan: "5", class: "empty" }, "No entries match these filters.")));
    } catch (e) {
      box.append(errorBox(e));
    } finally {
      busy(more, false);
    }
  };
  more.addEventListener("click", () => void load());
  await load();

  return h(
    "section",
    {},
    h("h1", {}, "Audit log"),
    filters,
    box,
    h("div", { class: "table-wrap" },
      h("table", { class: "list" }, h("caption", { class: "visually-hidden" }, "Audit entries, newest first"),
        h("thead", {}, h("tr", {}, ["Time", "Actor", "Kind", "Source", "Detail"].map((t) => h("th", { scope: "col" }, t)))),
        tbody)),
    more,
  );
}
