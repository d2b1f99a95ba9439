import { get, post } from "../api";
import { formatAgo, formatTime, h } from "../dom";
import { navigate } from "../router";
import { isAdmin } from "../state";
import { SourceView } from "../types";
import { badge, busy, errorBox } from "./common";

const NETWORK: Record<string, string> = { direct: "Direct", ssh: "SSH tunnel", private_endpoint: "Private endpoint" };

function discoveryCell(s: SourceView): HTMLElement {
  const d = s.discovery;
  if (!d) return h("span", { class: "muted" }, "not scheduled");
  const last = d.last;
  const parts: (HTMLElement | string)[] = [];
  if (d.running) parts.push(badge("muted", "running"));
  if (!last) {
    parts.push(h("span", { class: "muted" }, d.running ? "first run" : "not yet run"));
  } else if (last.state === "ok") {
    parts.push(badge("ok", "ok"), ` ${last.relations ?? 0} relations · `, h("time", { title: formatTime(last.finished_at) }, formatAgo(last.finished_at ?? last.started_at)));
  } else {
    parts.push(
      badge("fail", last.stage ? `failed at ${last.stage}` : last.state),
      " ",
      h("time", { title: formatTime(last.finished_at) }, formatAgo(last.finished_at ?? last.started_at)),
    );
    if (last.message) parts.push(h("div", { class: "small" }, last.message));
  }
  return h("div", {}, parts);
}

function testCell(s: SourceView): HTMLElement {
  const t = s.last_test;
  if (t) {
    const when = h("time", { title: `${formatTime(t.tested_at)} by ${t.tested_by}` }, formatAgo(t.tested_at));
    if (t.ok) return h("span", {}, badge("ok", "passed"), " ", when);
    const parts: (HTMLElement | string)[] = [badge("fail", t.failed ? `failed at ${t.failed}` : "failed"), " ", when];
    if (t.message) parts.push(h("div", { class: "small" }, t.message));
    return h("div", {}, parts);
  }
  // Without a recorded test, the last connection the service made (its discovery) says it.
  const last = s.discovery?.last;
  if (!last) return h("span", { class: "muted" }, "not tested");
  return last.state === "ok"
    ? badge("ok", "connects")
    : badge("fail", last.stage ? `fails at ${last.stage}` : "fails");
}

function passwordCell(s: SourceView): HTMLElement {
  if (s.auth === "rds_iam") return h("span", { class: "muted" }, "IAM tokens");
  if (!s.password_set || s.password_age_days === null || s.password_age_days === undefined)
    return h("span", { class: "muted" }, "—");
  const days = s.password_age_days;
  if (s.password_rotation === "rotate" || days >= 90)
    return h("span", {}, badge("fail", `${days} days`), h("div", { class: "small" }, "Rotate it: older than 90 days."));
  if (s.password_rotation === "warn" || days >= 80)
    return h("span", {}, badge("warn", `${days} days`), h("div", { class: "small" }, "Due for rotation at 90 days."));
  return h("span", {}, `${days} days`);
}

function alertsCell(s: SourceView): HTMLElement | string {
  const open = (s.alerts ?? []).filter((a) => !a.cleared_at);
  if (open.length === 0) return "";
  return h(
    "ul",
    { class: "alerts", "aria-label": `Alerts for ${s.name}` },
    open.map((a) =>
      h("li", {}, badge("warn", a.kind.replace(/_/g, " ")), " ", a.subject),
    ),
  );
}

export async function sourcesPage(): Promise<HTMLElement> {
  const admin = isAdmin();
  const status = h("div", { role: "status", "aria-live": "polite", class: "status-line" });
  const { sources } = await get<{ sources: SourceView[] }>("/sources");

  const refresh = (s: SourceView) => {
    const button = h("button", { type: "button", class: "secondary small", "aria-label": "Refresh Schema" }, "Refresh Schema");
    button.title = `Refresh the schema of ${s.name}`;
    button.addEventListener("click", async () => {
      busy(button, true);
      status.replaceChildren();
      try {
        await post(`/sources/${encodeURIComponent(s.id)}/refresh`);
        status.textContent = `Schema refresh of ${s.name} queued.`;
      } catch (e) {
        status.replaceChildren(errorBox(e));
      } finally {
        busy(button, false);
      }
    });
    return button;
  };

  const rows = sources.map((s) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, admin ? h("a", { href: `/sources/${encodeURIComponent(s.id)}` }, s.name) : s.name, h("div", { class: "small muted" }, s.id)),
      h("td", {}, NETWORK[s.network] ?? s.network),
      h("td", { class: "mono" }, `${s.host}:${s.port}`, h("div", { class: "small muted" }, `${s.database} as ${s.user}`)),
      h("td", {}, testCell(s)),
      h("td", {}, discoveryCell(s)),
      h("td", {}, passwordCell(s)),
      h("td", {}, alertsCell(s)),
      h(
        "td",
        { class: "actions" },
        h("a", { href: `/browse/${encodeURIComponent(s.id)}`, class: "button secondary small", "aria-label": `Browse ${s.name}` }, "Browse"),
        h("a", { href: `/query/${encodeURIComponent(s.id)}`, class: "button secondary small", "aria-label": `Query ${s.name}` }, "Query"),
        admin ? refresh(s) : null,
      ),
    ),
  );

  const table =
    sources.length === 0
      ? h("p", { class: "empty" }, admin ? "No data sources yet. Add one to start." : "No data sources are shared with you yet.")
      : h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "list" },
            h("caption", { class: "visually-hidden" }, "Data sources"),
            h(
              "thead",
              {},
              h(
                "tr",
                {},
                ["Name", "Network", "Host", "Last test", "Last discovery", "Password age", "Alerts", "Actions"].map((t) =>
                  h("th", { scope: "col" }, t),
                ),
              ),
            ),
            h("tbody", {}, rows),
          ),
        );

  return h(
    "section",
    {},
    h(
      "div",
      { class: "page-head" },
      h("h1", {}, "Data Sources"),
      admin ? h("button", { type: "button", onclick: () => navigate("/sources/new") }, "Add Data Source") : null,
    ),
    status,
    table,
  );
}
