import "./styles.css";
import { ApiError, get, Me, setUnauthenticatedHandler, del } from "./api";
import { h } from "./dom";
import { interceptLinks, match, navigate, onNavigate, Route } from "./router";
import { signInPage, setupPage } from "./pages/signin";
import { sourcesPage } from "./pages/sources";
import { sourceFormPage } from "./pages/sourceForm";
import { auditPage } from "./pages/audit";
import { usersPage } from "./pages/users";
import { browsePage } from "./pages/browse";
import { queryPage } from "./pages/query";
import { setupSqlPage } from "./pages/setupSql";
import { errorBox } from "./pages/common";
import { ctx } from "./state";


const routes: Route[] = [
  { pattern: "/setup", render: (_p, q) => setupPage(q), public: true, title: "First-run setup" },
  { pattern: "/signin", render: (_p, q) => signInPage(q), public: true, title: "Sign in" },
  { pattern: "/sources", render: () => sourcesPage(), title: "Data Sources" },
  { pattern: "/sources/new", render: () => sourceFormPage(null), admin: true, title: "Add Data Source" },
  { pattern: "/sources/:id", render: (p) => sourceFormPage(p.id!), admin: true, title: "Edit Data Source" },
  { pattern: "/setup-sql", render: () => setupSqlPage(), admin: true, title: "Setup SQL" },
  { pattern: "/browse/:id", render: (p) => browsePage(p.id!), title: "Schema browser" },
  { pattern: "/query/:id", render: (p) => queryPage(p.id!), title: "SQL workspace" },
  { pattern: "/audit", render: (_p, q) => auditPage(q), admin: true, title: "Audit log" },
  { pattern: "/users", render: () => usersPage(), admin: true, title: "Users & tokens" },
];

const app = document.getElementById("app")!;
interceptLinks(app);

async function loadMe(): Promise<Me | null> {
  try {
    return await get<Me>("/me");
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return null;
    throw e;
  }
}

function nav(me: Me, current: string): HTMLElement {
  const link = (href: string, label: string) =>
    h("a", { href, "aria-current": current.startsWith(href) ? "page" : null }, label);
  const signOut = h("button", { type: "button", class: "secondary small" }, "Sign out");
  signOut.addEventListener("click", async () => {
    try {
      await del("/sessions/current");
    } catch {
      // Signed out already, or the service is gone: the sign-in page says what is next.
    }
    ctx.me = null;
    navigate("/signin");
  });
  return h(
    "header",
    { class: "topbar" },
    h("a", { href: "/sources", class: "brand" }, "Sluice"),
    h(
      "nav",
      { "aria-label": "Main" },
      link("/sources", "Data Sources"),
      me.role === "admin" ? link("/setup-sql", "Setup SQL") : null,
      me.role === "admin" ? link("/audit", "Audit log") : null,
      me.role === "admin" ? link("/users", "Users & tokens") : null,
    ),
    h("span", { class: "whoami" }, `${me.login} (${me.role})`),
    signOut,
  );
}

let generation = 0;
async function render(): Promise<void> {
  const mine = ++generation;
  const path = location.pathname === "/" ? "/sources" : location.pathname;
  const query = new URLSearchParams(location.search);
  let route: Route | undefined;
  let params: Record<string, string> = {};
  for (const r of routes) {
    const m = match(r.pattern, path);
    if (m) {
      route = r;
      params = m;
      break;
    }
  }
  if (!route?.public && ctx.me === null) {
    try {
      ctx.me = await loadMe();
    } catch (e) {
      app.replaceChildren(h("main", { class: "page narrow" }, errorBox(e)));
      return;
    }
    if (ctx.me === null) {
      const back = location.pathname + location.search;
      navigate(`/signin${back && back !== "/" && back !== "/signin" ? `?next=${encodeURIComponent(back)}` : ""}`, true);
      return;
    }
  }
  const main = h("main", { id: "main", class: "page", tabindex: "-1" });
  const shell: HTMLElement[] = [];
  if (ctx.me && !route?.public) shell.push(nav(ctx.me, path));
  if (!route) {
    document.title = "Not found · Sluice";
    main.append(h("h1", {}, "Page not found"), h("p", {}, h("a", { href: "/sources" }, "Go to Data Sources")));
  } else if (route.admin && ctx.me?.role !== "admin") {
    document.title = `${route.title} · Sluice`;
    main.append(h("h1", {}, route.title), h("p", { role: "alert" }, "This page is for administrators."));
  } else {
    document.title = `${route.title} · Sluice`;
    try {
      main.append(await route.render(params, query));
    } catch (e) {
      main.append(h("h1", {}, route.title), errorBox(e));
    }
  }
  if (mine !== generation) return;
  app.replaceChildren(...shell, main);
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}

onNavigate(() => void render());
window.addEventListener("popstate", () => void render());
setUnauthenticatedHandler(() => {
  if (ctx.me !== null && !location.pathname.startsWith("/signin")) {
    ctx.me = null;
    navigate("/signin", true);
  }
});
void render();
