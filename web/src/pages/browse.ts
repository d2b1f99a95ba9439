import { get } from "../api";
import { append, formatTime, h, uid } from "../dom";
import { SearchIndex } from "../lib/search";
import { rowWindow } from "../lib/windowing";
import { CatalogRelation, CatalogSchema, CatalogSnapshot, SourceView } from "../types";
import { badge, errorBox } from "./common";

const ROW = 26;

interface Node {
  key: string;
  level: number;
  label: string;
  kind: "schema" | "relation";
  schema: CatalogSchema;
  rel?: CatalogRelation;
  parentKey?: string;
  expandable: boolean;
}

interface Flat { schema: string; name: string; rel: CatalogRelation; owner: CatalogSchema; parent?: CatalogRelation }

interface Change {
  id: number;
  changed_at: number;
  counts: Record<string, number>;
  diff: Record<string, unknown>;
}

const KIND: Record<string, string> = {
  table: "table", partitioned_table: "partitioned table", view: "view", materialized_view: "materialized view", foreign_table: "foreign table",
};

function fmtCount(n: number | null): string {
  if (n === null || n === undefined) return "unknown";
  return n.toLocaleString();
}

function fmtBytes(n: number | null): string {
  if (n === null || n === undefined) return "unknown";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export async function browsePage(id: string): Promise<HTMLElement> {
  const source = await get<SourceView>(`/sources/${encodeURIComponent(id)}`);
  let snap: CatalogSnapshot | null = null;
  let missing: unknown = null;
  try {
    snap = await get<CatalogSnapshot>(`/sources/${encodeURIComponent(id)}/catalog`);
  } catch (e) {
    missing = e;
  }
  const head = h(
    "div",
    { class: "page-head" },
    h("h1", {}, `Schema of ${source.name}`),
    snap ? h("span", { class: "muted small" }, `Discovered ${formatTime(snap.snapshot.discovered_at)} · PostgreSQL ${snap.catalog.server_version}`) : null,
  );
  if (!snap) return h("section", {}, head, errorBox(missing), h("p", {}, "The schema appears here after the source's first discovery."));
  const catalog = snap.catalog;

  const lostAccess = new Set<string>();
  for (const a of source.alerts ?? []) {
    if (a.cleared_at) continue;
    if (a.kind === "lost_access") lostAccess.add(`${a.details.schema as string}.${a.details.name as string}`);
  }

  // Every relation (partitions included) for the search, lowercased once.
  const flat: Flat[] = [];
  for (const s of catalog.schemas) {
    for (const r of s.relations) {
      flat.push({ schema: s.name, name: r.name, rel: r, owner: s });
      for (const p of r.partitions ?? []) flat.push({ schema: p.schema ?? s.name, name: p.name, rel: p, owner: s, parent: r });
    }
  }
  const t0 = performance.now();
  const index = new SearchIndex(flat);
  const indexMs = performance.now() - t0;

  // A relation's line in the search results, made once however often it matches.
  const hitNodes = new Map<Flat, Node>();
  const hitNode = (f: Flat): Node => {
    let n = hitNodes.get(f);
    if (!n) {
      n = { key: `r:${f.schema}.${f.name}`, level: 1, label: `${f.schema}.${f.name}`, kind: "relation", schema: f.owner, rel: f.rel, expandable: false };
      hitNodes.set(f, n);
    }
    return n;
  };

  const expanded = new Set<string>(catalog.schemas.length <= 3 ? catalog.schemas.map((s) => `s:${s.name}`) : []);
  let nodes: Node[] = [];
  let query = "";
  let active = 0;
  let selectedKey: string | null = null;

  const rebuild = () => {
    nodes = [];
    if (query) {
      const { hits, total } = index.search(query, 2000);
      for (const hit of hits) nodes.push(hitNode(hit.item));
      summary.textContent = total === 0 ? "No relation matches." : total > hits.length ? `${total.toLocaleString()} matches; the first ${hits.length.toLocaleString()} are listed.` : `${total.toLocaleString()} ${total === 1 ? "match" : "matches"}.`;
    } else {
      for (const s of catalog.schemas) {
        const sk = `s:${s.name}`;
        nodes.push({ key: sk, level: 1, label: s.name, kind: "schema", schema: s, expandable: s.relations.length > 0 });
        if (!expanded.has(sk)) continue;
        for (const r of s.relations) {
          const rk = `r:${s.name}.${r.name}`;
          const parts = r.partitions ?? [];
          nodes.push({ key: rk, level: 2, label: r.name, kind: "relation", schema: s, rel: r, parentKey: sk, expandable: parts.length > 0 });
          if (parts.length && expanded.has(rk)) {
            for (const p of parts) nodes.push({ key: `r:${p.schema ?? s.name}.${p.name}`, level: 3, label: p.name, kind: "relation", schema: s, rel: p, parentKey: rk, expandable: false });
          }
        }
      }
      summary.textContent = `${catalog.schemas.length.toLocaleString()} schemas, ${flat.length.toLocaleString()} relations.`;
    }
    active = Math.min(active, Math.max(nodes.length - 1, 0));
    tree.setAttribute("aria-activedescendant", "");
    last = "";
    paint();
  };

  const search = h("input", { type: "search", id: uid("search"), placeholder: "Table or schema.table", autocomplete: "off", spellcheck: "false" });
  const searchLabel = h("label", { for: search.id }, "Search relations");
  const summary = h("p", { class: "small muted", role: "status", "aria-live": "polite" });
  const inner = h("div", { class: "tree-inner", role: "presentation" });
  const spacer = h("div", { class: "tree-spacer", role: "presentation" }, inner);
  const tree = h("div", { role: "tree", class: "tree", "aria-label": "Schemas and relations", tabindex: "0" }, spacer);
  const detail = h("div", { class: "detail-pane", "aria-live": "polite" });

  let last = "";
  function paint() {
    const w = rowWindow(tree.scrollTop, tree.clientHeight || 480, ROW, nodes.length, 4);
    const key = `${w.start}:${w.end}:${active}:${selectedKey}`;
    if (key === last) return;
    last = key;
    spacer.style.height = `${w.total}px`;
    inner.style.transform = `translateY(${w.offset}px)`;
    const frag = document.createDocumentFragment();
    for (let i = w.start; i < w.end; i++) {
      const n = nodes[i]!;
      const r = n.rel;
      const badges: HTMLElement[] = [];
      if (n.kind === "schema" && n.schema.usable === false) badges.push(badge("fail", "no usage"));
      if (r && !r.selectable) badges.push(badge("fail", "no access"));
      if (r && lostAccess.has(`${r.schema ?? n.schema.name}.${r.name}`)) badges.push(badge("warn", "access lost"));
      const el = h(
        "div",
        {
          role: "treeitem",
          id: `tn-${i}`,
          class: `tree-item lvl${n.level}${i === active ? " active" : ""}${n.key === selectedKey ? " selected" : ""}`,
          "aria-level": String(n.level),
          "aria-expanded": n.expandable ? String(expanded.has(n.key)) : null,
          "aria-selected": String(n.key === selectedKey),
          "aria-setsize": String(nodes.length),
          "aria-posinset": String(i + 1),
          "data-index": String(i),
        },
        h("span", { class: "twisty", "aria-hidden": "true" }, n.expandable ? (expanded.has(n.key) ? "▾" : "▸") : ""),
        h("span", { class: "tree-label" }, n.label),
        r ? h("span", { class: "tree-kind" }, KIND[r.kind] ?? r.kind) : h("span", { class: "tree-kind" }, `${n.schema.relations.length}`),
        badges,
      );
      frag.append(el);
    }
    inner.replaceChildren(frag);
    tree.setAttribute("aria-activedescendant", active >= w.start && active < w.end ? `tn-${active}` : "");
  }

  const toggle = (i: number) => {
    const n = nodes[i];
    if (!n?.expandable) return;
    if (expanded.has(n.key)) expanded.delete(n.key);
    else expanded.add(n.key);
    rebuild();
  };
  const select = (i: number) => {
    const n = nodes[i];
    if (!n) return;
    active = i;
    if (n.kind === "schema") {
      toggle(i);
      return;
    }
    selectedKey = n.key;
    showRelation(n.rel!, n.rel!.schema ?? n.schema.name);
    last = "";
    paint();
  };
  const ensureVisible = () => {
    const top = active * ROW;
    if (top < tree.scrollTop) tree.scrollTop = top;
    else if (top + ROW > tree.scrollTop + tree.clientHeight) tree.scrollTop = top + ROW - tree.clientHeight;
    last = "";
    paint();
  };

  tree.addEventListener("click", (e) => {
    const item = (e.target as Element).closest<HTMLElement>(".tree-item");
    if (!item) return;
    const i = Number(item.dataset.index);
    if ((e.target as Element).closest(".twisty")) {
      active = i;
      toggle(i);
    } else select(i);
  });
  tree.addEventListener("keydown", (e) => {
    const n = nodes[active];
    switch (e.key) {
      case "ArrowDown": active = Math.min(active + 1, nodes.length - 1); break;
      case "ArrowUp": active = Math.max(active - 1, 0); break;
      case "Home": active = 0; break;
      case "End": active = Math.max(nodes.length - 1, 0); break;
      case "PageDown": active = Math.min(active + Math.floor(tree.clientHeight / ROW), nodes.length - 1); break;
      case "PageUp": active = Math.max(active - Math.floor(tree.clientHeight / ROW), 0); break;
      case "ArrowRight":
        if (n?.expandable && !expanded.has(n.key)) toggle(active);
        else if (n?.expandable) active = Math.min(active + 1, nodes.length - 1);
        break;
      case "ArrowLeft":
        if (n?.expandable && expanded.has(n.key)) toggle(active);
        else if (n?.parentKey) active = Math.max(nodes.findIndex((m) => m.key === n.parentKey), 0);
        break;
      case "Enter":
      case " ":
        select(active);
        break;
      default:
        return;
    }
    e.preventDefault();
    ensureVisible();
  });
  let scheduled = false;
  tree.addEventListener("scroll", () => {
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
  }).observe(tree);

  search.addEventListener("input", () => {
    query = search.value;
    active = 0;
    tree.scrollTop = 0;
    rebuild();
  });
  search.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" && nodes.length) {
      e.preventDefault();
      tree.focus();
    } else if (e.key === "Enter" && nodes.length) {
      e.preventDefault();
      select(0);
    }
  });

  function showRelation(r: CatalogRelation, schemaName: string) {
    const pk = new Set(r.primary_key ?? []);
    const fkCols = new Map<string, string>();
    for (const fk of r.foreign_keys ?? []) fk.columns.forEach((c, i) => fkCols.set(c, `${fk.ref_schema}.${fk.ref_table}(${fk.ref_columns[i] ?? ""})`));
    const lost = lostAccess.has(`${schemaName}.${r.name}`);
    detail.replaceChildren();
    append(detail, [
      h("h2", {}, `${schemaName}.${r.name}`, " ", h("span", { class: "muted small" }, KIND[r.kind] ?? r.kind)),
      !r.selectable ? h("p", { class: "notice fail" }, "You cannot read this relation: SELECT is not granted to the source's user.") : null,
      lost ? h("p", { class: "notice warn" }, "Access to this relation was lost since an earlier discovery.") : null,
      r.comment ? h("p", { class: "comment" }, r.comment) : null,
      h("dl", { class: "facts" },
        h("dt", {}, "Rows (estimate)"), h("dd", {}, fmtCount(r.row_estimate)),
        h("dt", {}, "Size"), h("dd", {}, fmtBytes(r.size_bytes)),
        h("dt", {}, "Owner"), h("dd", {}, r.owner),
        r.partition_key ? [h("dt", {}, "Partitioned by"), h("dd", { class: "mono" }, r.partition_key)] : null,
        r.partition_bound ? [h("dt", {}, "Bound"), h("dd", { class: "mono" }, r.partition_bound)] : null,
        r.partitions?.length ? [h("dt", {}, "Partitions"), h("dd", {}, String(r.partitions.length))] : null,
      ),
      r.columns.length
        ? h("div", { class: "table-wrap" }, h("table", { class: "list columns" },
            h("caption", { class: "visually-hidden" }, `Columns of ${r.name}`),
            h("thead", {}, h("tr", {}, ["Column", "Type", "Keys", "Nullable", "Default", "Comment"].map((t) => h("th", { scope: "col" }, t)))),
            h("tbody", {}, r.columns.map((c) => h("tr", {},
              h("th", { scope: "row", class: "mono" }, c.name),
              h("td", { class: "mono" }, c.type),
              h("td", {}, pk.has(c.name) ? badge("ok", "PK") : null, fkCols.has(c.name) ? h("span", { class: "small" }, " FK → ", h("code", {}, fkCols.get(c.name)!)) : null),
              h("td", {}, c.nullable ? "yes" : "no"),
              h("td", { class: "mono small" }, c.generated ? `generated: ${c.generated.expression}` : c.identity ? `identity (${c.identity})` : c.default ?? ""),
              h("td", { class: "small" }, c.comment ?? ""),
            )))))
        : null,
      r.columns_limited ? h("p", { class: "small muted" }, "Only the columns granted to the source's user are listed.") : null,
      r.foreign_keys?.length
        ? [h("h3", {}, "Foreign keys"), h("ul", {}, r.foreign_keys.map((fk) => h("li", { class: "mono small" }, `${fk.name}: (${fk.columns.join(", ")}) → ${fk.ref_schema}.${fk.ref_table}(${fk.ref_columns.join(", ")})`)))]
        : null,
      r.unique?.length ? [h("h3", {}, "Unique"), h("ul", {}, r.unique.map((u) => h("li", { class: "mono small" }, `(${u.join(", ")})`)))] : null,
      r.indexes?.length ? [h("h3", {}, "Indexes"), h("ul", {}, r.indexes.map((x) => h("li", { class: "mono small" }, `${x.name} (${x.columns.join(", ")})${x.unique ? " unique" : ""}`)))] : null,
    ]);
  }

  // The change history.
  const history = h("section", { class: "history", "aria-label": "Change history" }, h("h2", {}, "Change history"));
  const historyList = h("ol", { class: "changes" });
  history.append(historyList);
  const more = h("button", { type: "button", class: "secondary small", hidden: true }, "Older changes");
  history.append(more);
  let cursor: string | null = null;
  const loadChanges = async () => {
    try {
      const page = await get<{ changes: Change[]; next: string | number | null }>(`/sources/${encodeURIComponent(id)}/catalog/changes${cursor !== null ? `?cursor=${encodeURIComponent(String(cursor))}` : ""}`);
      for (const c of page.changes) {
        const counts = Object.entries(c.counts ?? {}).filter(([, n]) => n > 0).map(([k, n]) => `${k.replace(/_/g, " ")}: ${n}`);
        const lostCount = (c.counts?.lost_access ?? 0) + (c.counts?.lost_usage ?? 0);
        historyList.append(h("li", {}, h("time", {}, formatTime(c.changed_at)), " ", lostCount ? badge("warn", "access lost") : null, " ", counts.join(", ") || "changed"));
      }
      if (historyList.children.length === 0) historyList.append(h("li", { class: "muted" }, "No changes since the first discovery."));
      cursor = page.next === null || page.next === undefined ? null : String(page.next);
      more.hidden = cursor === null;
    } catch (e) {
      history.append(errorBox(e));
    }
  };
  more.addEventListener("click", () => void loadChanges());
  void loadChanges();

  const section = h(
    "section",
    { class: "browser" },
    head,
    h("div", { class: "browse-grid" },
      h("div", { class: "tree-pane" }, h("div", { class: "field" }, searchLabel, search), summary, tree),
      h("div", {}, detail, history)),
  );
  section.dataset.indexMs = indexMs.toFixed(1);
  detail.append(h("p", { class: "muted" }, "Choose a relation to see its columns, keys and comments."));
  rebuild();
  return section;
}
