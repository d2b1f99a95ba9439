import { get, Me, post } from "../api";
import { field, h } from "../dom";
import { navigate } from "../router";
import { ctx } from "../state";
import { busy, clearErrors, input, showError } from "./common";

function nextPath(query: URLSearchParams): string {
  const next = query.get("next");
  // Only a path of this app: never another origin.
  return next && next.startsWith("/") && !next.startsWith("//") ? next : "/sources";
}

async function signIn(login: string, password: string): Promise<void> {
  await post("/sessions", { login, password });
  ctx.me = await get<Me>("/me");
}

export function signInPage(query: URLSearchParams): HTMLElement {
  const login = field("Login", input({ name: "login", autocomplete: "username", required: true }));
  const password = field(
    "Password",
    input({ type: "password", name: "password", autocomplete: "current-password", required: true }),
  );
  const box = h("div");
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { class: "card", novalidate: true }, login.row, password.row, box, submit);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const fields = { login, password };
    clearErrors(fields, box);
    if (!login.input.value.trim()) return login.setError("Enter your login.");
    if (!password.input.value) return password.setError("Enter your password.");
    busy(submit, true);
    try {
      await signIn(login.input.value.trim(), password.input.value);
      navigate(nextPath(query));
    } catch (err) {
      showError(err, fields, box);
    } finally {
      busy(submit, false);
    }
  });
  return h(
    "section",
    { class: "narrow" },
    h("h1", {}, "Sign in to Sluice"),
    form,
    h("p", { class: "help" }, "First time here? Open the setup link sluice serve printed when it started."),
  );
}

export function setupPage(query: URLSearchParams): HTMLElement {
  // The printed link carries the token in the fragment (#token=…), so it reaches no server log.
  const fromHash = new URLSearchParams(location.hash.replace(/^#/, "")).get("token");
  const token = fromHash ?? query.get("token") ?? "";
  const login = field("Login", input({ name: "login", autocomplete: "username", value: "admin" }), "Letters, digits, . _ - and @.");
  const password = field(
    "Password",
    input({ type: "password", name: "password", autocomplete: "new-password" }),
    "At least 12 characters.",
  );
  const tokenField = field("Setup token", input({ name: "setup_token", value: token, autocomplete: "off" }));
  const box = h("div");
  const submit = h("button", { type: "submit" }, "Create admin");
  const form = h(
    "form",
    { class: "card", novalidate: true },
    token ? null : tokenField.row,
    login.row,
    password.row,
    box,
    submit,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const fields = { login, password, setup_token: tokenField };
    clearErrors(fields, box);
    const setupToken = token || tokenField.input.value.trim();
    if (!setupToken) return tokenField.setError("Paste the token from the setup link sluice serve printed.");
    busy(submit, true);
    try {
      await post("/setup", { setup_token: setupToken, login: login.input.value.trim(), password: password.input.value });
      await signIn(login.input.value.trim(), password.input.value);
      history.replaceState(null, "", "/setup");
      navigate("/sources");
    } catch (err) {
      if (token && (err as { detail?: { field?: string } }).detail?.field === "setup_token") {
        form.insertBefore(tokenField.row, form.firstChild);
      }
      showError(err, fields, box);
    } finally {
      busy(submit, false);
    }
  });
  return h(
    "section",
    { class: "narrow" },
    h("h1", {}, "Set up Sluice"),
    h("p", {}, "Create the first administrator. The setup link works once."),
    form,
  );
}
