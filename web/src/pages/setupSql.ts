import { post } from "../api";
import { append, copyButton, field, h } from "../dom";
import { busy, clearErrors, input, showError } from "./common";

const list = (text: string): string[] => text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);

export function setupSqlPage(): HTMLElement {
  const user = field("Read-only user", input({ name: "user", value: "sluice_ro", autocomplete: "off" }));
  const database = field("Database", input({ name: "database", autocomplete: "off" }), "The script must run connected to this database.");
  const schemas = field("Schemas", input({ name: "schemas", value: "public", autocomplete: "off" }), "Comma-separated schemas to read.");
  const owners = field("ELT owner roles", input({ name: "elt_owners", autocomplete: "off" }), "Roles that create tables later (dbt, Fivetran, Airbyte…), comma-separated: what they create becomes readable too.");
  const readAll = h("input", { type: "checkbox", name: "read_all_data", id: "read-all" });
  const readAllRow = h("div", { class: "field checkbox" }, readAll, h("label", { for: "read-all" }, " Grant pg_read_all_data instead (PostgreSQL 14 and later: every schema, now and later)"));
  const password = field("Password", input({ type: "password", name: "password", autocomplete: "new-password" }), "Leave empty to generate one; it is shown once.");
  const box = h("div");
  const submit = h("button", { type: "submit" }, "Generate script");
  const out = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "card", novalidate: true }, user.row, database.row, schemas.row, owners.row, readAllRow, password.row, box, submit);
  readAll.addEventListener("change", () => (schemas.row.hidden = readAll.checked));

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const fields = { user, database, schemas, elt_owners: owners, password };
    clearErrors(fields, box);
    out.replaceChildren();
    const body: Record<string, unknown> = { user: user.input.value.trim(), database: database.input.value.trim(), read_all_data: readAll.checked };
    if (!readAll.checked) body.schemas = list(schemas.input.value);
    const o = list(owners.input.value);
    if (o.length) body.elt_owners = o;
    if (password.input.value) body.password = password.input.value;
    busy(submit, true);
    try {
      const made = await post<{ sql: string; generated_password: string | null }>("/setup-sql", body);
      const script = made.sql;
      const name = `sluice-setup-${body.database || "db"}.sql`;
      const download = h("button", { type: "button", class: "secondary" }, "Download");
      download.addEventListener("click", () => {
        const url = URL.createObjectURL(new Blob([script], { type: "application/sql" }));
        const a = h("a", { href: url, download: name });
        document.body.append(a);
        a.click();
        a.remove();
        window.setTimeout(() => URL.revokeObjectURL(url), 1000);
      });
      const pw = made.generated_password;
      append(out, [
        pw
          ? h("div", { class: "notice warn", role: "status" },
              h("p", {}, "The generated password, shown this once. Put it in the source's Password field; the script holds only its verifier."),
              h("div", { class: "copyline" }, h("code", { class: "keyline" }, pw), copyButton(() => pw)))
          : null,
        h("h2", {}, "The script"),
        h("p", { class: "muted" }, `Run it once as a superuser: psql -d ${body.database || "DATABASE"} -f ${name}. It runs in one transaction and can run again.`),
        h("div", { class: "form-actions" }, copyButton(() => script), download),
        h("pre", { class: "script mono", tabindex: "0", "aria-label": "Setup SQL script" }, script),
      ]);
    } catch (err) {
      showError(err, fields, box);
    } finally {
      busy(submit, false);
    }
  });

  return h(
    "section",
    {},
    h("h1", {}, "Setup SQL"),
    h("p", {}, "The script a database owner runs to create Sluice's read-only user with exactly the privileges it needs."),
    form,
    out,
  );
}
