// Add a source through the form: Test Connection fails at `auth` with its hint on a wrong
// password, passes once it is fixed; saved, it is listed and its schema appears.
import { test } from "node:test";
import assert from "node:assert/strict";
import { config, browser, axe, screenshot, signIn, choose, checkLine, until } from "./lib.mjs";

const t = config.target;

test("a source added through the form: auth fails with its hint, then passes; saved, its schema appears", async () => {
  const b = await browser();
  try {
    const { page } = b;
    await signIn(page, config.admin.login, config.admin.password);
    await page.getByRole("link", { name: "Data Sources" }).click();
    await page.getByRole("link", { name: "Add Data Source" }).or(page.getByRole("button", { name: "Add Data Source" })).first().click();
    await page.getByLabel("Name", { exact: true }).fill("Shop");
    await choose(page, "Network", /direct/i);
    await page.getByLabel("Host", { exact: true }).fill(t.host);
    await page.getByLabel("Port", { exact: true }).fill(String(t.port));
    await page.getByLabel("Database", { exact: true }).fill(t.database);
    await page.getByLabel("User", { exact: true }).fill(t.user);
    await page.getByLabel("Password", { exact: true }).fill(t.wrong_password);
    await choose(page, "SSL mode", /verify-full/);
    await page.getByLabel("CA certificate", { exact: true }).fill(t.ca_pem);
    await axe(page, "the source form");

    await page.getByRole("button", { name: "Test Connection" }).click();
    const tls = await checkLine(page, "tls");
    assert.match(tls, /pass/, tls);
    const auth = await checkLine(page, "auth");
    assert.match(auth, /fail/, auth);
    // The hint says what to do about the password.
    assert.match(auth, /password/i, auth);
    await axe(page, "the source form with a failed test");

    await page.getByLabel("Password", { exact: true }).fill(t.password);
    await page.getByRole("button", { name: "Test Connection" }).click();
    const passed = await checkLine(page, "auth");
    assert.match(passed, /pass/, passed);
    await page.getByRole("status").filter({ hasText: /Connection works/ }).waitFor();
    await page.getByRole("list", { name: "Test results" }).scrollIntoViewIfNeeded();
    await screenshot(page, "source-form");

    await page.getByRole("button", { name: "Save" }).click();
    await page.getByRole("link", { name: "Data Sources" }).click();
    await page.getByRole("cell", { name: "Shop", exact: true }).or(page.getByText("Shop", { exact: true })).first().waitFor();
    await axe(page, "the sources list");
    // Discovered after the save (the API says when); the list then shows it.
    const id = await until("the source's first discovery", () =>
      page.evaluate(async () => {
        const r = await fetch("/api/v1/sources", { credentials: "same-origin" });
        const s = (await r.json()).sources.find((s) => s.name === "Shop");
        return s?.discovery?.last?.state === "ok" ? s.id : null;
      }), 300_000);
    config.shop_id = id;
    // The saved source tested from its edit page: the list then shows that test, not the
    // discovery's connection.
    await page.goto(`/sources/${encodeURIComponent(id)}`);
    await page.getByRole("button", { name: "Test Connection" }).click();
    await page.getByRole("status").filter({ hasText: /Connection works/ }).waitFor();
    await page.getByRole("link", { name: "Data Sources" }).click();
    const row = page.getByRole("row").filter({ hasText: "Shop" });
    await row.getByText("passed", { exact: true }).waitFor();
    await page.reload();
    await page.getByText("Shop", { exact: true }).first().waitFor();
    await page.getByRole("button", { name: "Refresh Schema" }).first().waitFor();
    await screenshot(page, "sources");
    assert.deepEqual(b.errors, []);
  } finally {
    await b.close();
  }
});
