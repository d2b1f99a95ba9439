// Client-side routes: the service answers index.html on every page path, and links inside the
// app change history instead of loading the page again.

export type Render = (params: Record<string, string>, query: URLSearchParams) => HTMLElement | Promise<HTMLElement>;

export interface Route {
  pattern: string; // "/sources/:id"
  render: Render;
  admin?: boolean;
  public?: boolean;
  title: string;
}

export function match(pattern: string, path: string): Record<string, string> | null {
  const want = pattern.split("/").filter(Boolean);
  const got = path.split("/").filter(Boolean);
  if (want.length !== got.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    const g = got[i]!;
    if (w.startsWith(":")) {
      try {
        params[w.slice(1)] = decodeURIComponent(g);
      } catch {
        return null;
      }
    } else if (w !== g) {
      return null;
    }
  }
  return params;
}

let navigateHandler: (path: string) => void = () => {};
export function onNavigate(handler: (path: string) => void): void {
  navigateHandler = handler;
}

export function navigate(path: string, replace = false): void {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  navigateHandler(path);
}

/** Links inside the app navigate without a page load (modifier clicks keep the browser's way). */
export function interceptLinks(root: HTMLElement): void {
  root.addEventListener("click", (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = (e.target as Element).closest?.("a");
    if (!a || a.target || a.hasAttribute("download")) return;
    const href = a.getAttribute("href");
    if (!href || !href.startsWith("/") || href.startsWith("/api/")) return;
    e.preventDefault();
    navigate(href);
  });
}
