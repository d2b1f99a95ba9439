import { del, get, post } from "../api";
import { copyButton, field, formatTime, h } from "../dom";
import { busy, clearErrors, errorBox, input, showError } from "./common";

interface User { id: number; login: string; role: string; created_at: number; disabled: boolean }
interface Token { public_id: string; name: string; role: string; source: string | null; created_at: number; last_used_at: number | null; revoked: boolean }

export async function usersPage(): Promise<HTMLElement> {
  const section = h("section", {});
  const status = h("div", { role: "status", "aria-live": "polite" });

  const render = async () => {
    const [{ users }, { tokens }] = await Promise.all([get<{ users: User[] }>("/users"), get<{ tokens: Token[] }>("/tokens")]);
    const revokeUser = (u: User) => {
      if (u.disabled) return h("span", { class: "muted" }, "disabled");
      const b = h("button", { type: "button", class: "secondary small", "aria-label": `Disable ${u.login}` }, "Disable");
      b.addEventListener("click", async () => {
        if (!window.confirm(`Disable ${u.login}? Their sessions end at once.`)) return;
        busy(b, true);
        try {
          await del(`/users/${u.id}`);
          await render();
        } catch (e) {
          status.replaceChildren(errorBox(e));
          busy(b, false);
        }
      });
      return b;
    };
    const revokeToken = (t: Token) => {
      if (t.revoked) return h("span", { class: "muted" }, "revoked");
      const b = h("button", { type: "button", class: "secondary small", "aria-label": `Revoke ${t.name}` }, "Revoke");
      b.addEventListener("click", async () => {
        if (!window.confirm(`Revoke the token ${t.name}? It stops working at once.`)) return;
        busy(b, true);
        try {
          await del(`/tokens/${encodeURIComponent(t.public_id)}`);
          await render();
        } catch (e) {
          status.replaceChildren(errorBox(e));
          busy(b, false);
        }
      });
      return b;
    };

    // New user.
    const login = field("Login", input({ name: "login", autocomplete: "off" }));
    const password = field("Password", input({ type: "password", name: "password", autocomplete: "new-password" }), "At least 12 characters.");
    const role = field("Role", h("select", { name: "role" }, h("option", { value: "analyst" }, "analyst"), h("option", { value: "admin" }, "admin")));
    const userBox = h("div");
    const createUser = h("button", { type: "submit" }, "Create user");
    const userForm = h("form", { class: "card inline-form", novalidate: true, "aria-label": "New user" }, login.row, password.row, role.row, userBox, createUser);
    userForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      const fields = { login, password, role };
      clearErrors(fields, userBox);
      busy(createUser, true);
      try {
        await post("/users", { login: login.input.value.trim(), password: password.input.value, role: role.input.value });
        status.textContent = `User ${login.input.value.trim()} created.`;
        await render();
      } catch (err) {
        showError(err, fields, userBox);
        busy(createUser, false);
      }
    });

    // New token.
    const tname = field("Token name", input({ name: "name", autocomplete: "off" }));
    const trole = field("Token role", h("select", { name: "role" }, ["analyst", "admin", "refresh"].map((r) => h("option", { value: r }, r))));
    const tsource = field("Token source", input({ name: "source", autocomplete: "off" }), "A source id: required for refresh tokens, optional otherwise.");
    const tokenBox = h("div");
    const shown = h("div", { "aria-live": "polite" });
    const createToken = h("button", { type: "submit" }, "Create token");
    const tokenForm = h("form", { class: "card inline-form", novalidate: true, "aria-label": "New API token" }, tname.row, trole.row, tsource.row, tokenBox, createToken, shown);
    tokenForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      const fields = { name: tname, role: trole, source: tsource };
      clearErrors(fields, tokenBox);
      busy(createToken, true);
      try {
        const body: Record<string, unknown> = { name: tname.input.value.trim(), role: trole.input.value };
        if (tsource.input.value.trim()) body.source = tsource.input.value.trim();
        const made = await post<{ token: string }>("/tokens", body);
        await render();
        const text = made.token;
        section.querySelector(".token-shown")?.replaceChildren(
          h("div", { class: "notice ok", role: "status" },
            h("p", {}, "The new token. It is shown this once: copy it now."),
            h("div", { class: "copyline" }, h("code", { class: "keyline" }, text), copyButton(() => text))),
        );
      } catch (err) {
        showError(err, fields, tokenBox);
        busy(createToken, false);
      }
    });

    section.replaceChildren(
      h("h1", {}, "Users & tokens"),
      status,
      h("h2", {}, "Users"),
      h("div", { class: "table-wrap" }, h("table", { class: "list" }, h("caption", { class: "visually-hidden" }, "Users"),
        h("thead", {}, h("tr", {}, ["Login", "Role", "Created", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, users.map((u) => h("tr", {}, h("th", { scope: "row" }, u.login), h("td", {}, u.role), h("td", {}, formatTime(u.created_at)), h("td", {}, revokeUser(u))))))),
      userForm,
      h("h2", {}, "API tokens"),
      h("div", { class: "token-shown" }),
      h("div", { class: "table-wrap" }, h("table", { class: "list" }, h("caption", { class: "visually-hidden" }, "API tokens"),
        h("thead", {}, h("tr", {}, ["Name", "Id", "Role", "Source", "Last used", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, tokens.map((t) => h("tr", {}, h("th", { scope: "row" }, t.name), h("td", { class: "mono" }, t.public_id), h("td", {}, t.role), h("td", {}, t.source ?? "any"), h("td", {}, t.last_used_at ? formatTime(t.last_used_at) : "never"), h("td", {}, revokeToken(t))))))),
      tokenForm,
    );
  };
  await render();
  return section;
}
