// An analyst: no admin pages in the navigation, none reachable by address, no secrets anywhere.
import { test } from "node:test";
import assert from "node:assert/strict";
import { config, browser, axe, signIn, sourceId } from "./lib.mjs";

test("an analyst sees no admin pages and no secrets", async () => {
  const b = await browser();
  try {
    const { page } = b;
    // The administrator adds the analyst.
    await signIn(page, config.admin.login, config.admin.password);
    const made = await page.evaluate(async (who) => {
      const me = await (await fetch("/api/v1/me", { credentials: "same-origin" })).json();
      const r = await fetch("/api/v1/users", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": me.csrf_token },
        body: JSON.stringify({ login: who.login, password: who.password, role: "analyst" }),
      });
      return r.status;
    }, config.analyst);
    assert.equal(made, 201);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("button", { name: "Sign in" }).waitFor();

    await signIn(page, config.analyst.login, config.analyst.password);
    const nav = page.getByRole("navigation");
    assert.equal(await nav.getByRole("link", { name: "Audit log" }).count(), 0);
    assert.equal(await nav.getByRole("link", { name: "Users & tokens" }).count(), 0);
    assert.equal(await page.getByRole("link", { name: "Add Data Source" }).count() + (await page.getByRole("button", { name: "Add Data Source" }).count()), 0);
    await axe(page, "the analyst's sources list");
    const seen = [];
    for (const path of ["/sources", "/audit", "/users", "/setup-sql", `/sources/${await sourceId(page, "Shop")}`]) {
      await page.goto(path);
      await page.waitForLoadState("networkidle");
      const text = await page.locator("body").innerText();
      seen.push(text);
      assert.equal(await page.getByRole("button", { name: "Test Connection" }).count(), 0, path);
      assert.equal(await page.getByRole("button", { name: "Save" }).count(), 0, path);
    }
    // The source as the API shows an analyst, and every page: no password, no key.
    const api = await page.evaluate(async () => (await fetch("/api/v1/sources", { credentials: "same-origin" })).text());
    for (const secret of config.secrets) {
      for (const text of [...seen, api]) assert.ok(!text.includes(secret), "a secret reached the analyst");
    }
    assert.deepEqual(b.errors.filter((e) => !/403|Forbidden/i.test(e)), []);
  } finally {
    await b.close();
  }
});
