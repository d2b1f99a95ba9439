import { ApiError, ErrorDetail } from "../api";
import { Field, h } from "../dom";

/** The API's message and hint for an error, or a plain sentence for anything else. */
export function describe(e: unknown): ErrorDetail {
  if (e instanceof ApiError) return e.detail;
  return { code: "client", message: "Something went wrong in this page.", hint: "Reload the page and try again." };
}

export function errorBox(e: unknown): HTMLElement {
  const d = describe(e);
  return h(
    "div",
    { class: "notice fail", role: "alert" },
    h("p", { class: "msg" }, d.message),
    d.hint ? h("p", { class: "hint" }, d.hint) : null,
  );
}

/** Shows an API error next to the field it names (when a field here has that name), else in `box`. */
export function showError(e: unknown, fields: Record<string, Field>, box: HTMLElement): void {
  for (const f of Object.values(fields)) f.setError(null);
  box.replaceChildren();
  const d = describe(e);
  const target = d.field ? fields[d.field] : undefined;
  if (target) {
    target.setError(d.hint ? `${d.message} ${d.hint}` : d.message);
    target.input.focus();
  } else {
    box.append(errorBox(e));
  }
}

export function clearErrors(fields: Record<string, Field>, box: HTMLElement): void {
  for (const f of Object.values(fields)) f.setError(null);
  box.replaceChildren();
}

export function badge(kind: "ok" | "warn" | "fail" | "muted", text: string): HTMLElement {
  return h("span", { class: `badge ${kind}` }, text);
}

export function input(attrs: Record<string, string | boolean | null | undefined> = {}): HTMLInputElement {
  return h("input", { type: "text", ...attrs });
}

export function busy(button: HTMLButtonElement, on: boolean): void {
  button.disabled = on;
  button.setAttribute("aria-busy", on ? "true" : "false");
}
