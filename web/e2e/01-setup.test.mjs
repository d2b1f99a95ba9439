// First run: the one-time link `sluice serve` printed, the first administrator, sign-out and
// sign-in; the page's security headers, axe-core, and what the first load transfers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { config, browser, axe, report, signIn } from "./lib.mjs";

test("first-run setup creates the administrator, who signs out and in again", async () => {
  const b = await browser();
  try {
    const { page } = b;
    const responses = [];
    page.on("response", (r) => responses.push(r));
    const nav = await page.goto(config.setup_url);
    const headers = nav.headers();
    assert.match(headers["content-security-policy"] ?? "", /script-src 'self'/);
    assert.match(headers["content-security-policy"], /frame-ancestors 'none'/);
    assert.doesNotMatch(headers["content-security-policy"], /unsafe-inline/);
    assert.equal(headers["x-content-type-options"], "nosniff");
    assert.equal(headers["referrer-policy"], "no-referrer");

    await page.getByLabel("Login", { exact: true }).waitFor();
    // What the first load transferred, and whether it came compressed.
    const sizes = await page.evaluate(() =>
      [...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource")].map((e) => ({
        name: e.name,
        transfer: e.transferSize,
        encoded: e.encodedBodySize,
        decoded: e.decodedBodySize,
      })),
    );
    const encoded = sizes.reduce((s, e) => s + e.encoded, 0);
    const decoded = sizes.reduce((s, e) => s + e.decoded, 0);
    report("first load, encoded bytes (sum of encodedBodySize)", encoded, "B");
    report("first load, decoded bytes", decoded, "B");
    const scripts = responses.filter((r) => r.url().includes("/assets/") && r.url().endsWith(".js"));
    assert.ok(scripts.length > 0, "the page loads its script from /assets/");
    for (const r of scripts) {
      report(`content-encoding of ${new URL(r.url()).pathname}`, (await r.allHeaders())["content-encoding"] ?? "identity", "");
    }
    await axe(page, "first-run setup");

    await page.getByLabel("Login", { exact: true }).fill(config.admin.login);
    await page.getByLabel("Password", { exact: true }).fill(config.admin.password);
    await page.getByRole("button", { name: "Create admin" }).click();
    await page.getByRole("link", { name: "Data Sources" }).waitFor();
    // The link is single use.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    await axe(page, "sign-in");
    // A wrong password is an error next to the form, and no way in.
    await page.getByLabel("Login", { exact: true }).fill(config.admin.login);
    await page.getByLabel("Password", { exact: true }).fill("not the password at all");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").filter({ hasText: /wrong|password/i }).waitFor();
    await signIn(page, config.admin.login, config.admin.password);
    // The refused sign-in's 401 is logged by the browser as a failed resource load; nothing else.
    assert.deepEqual(b.errors.filter((e) => !/status of 401/.test(e)), []);
  } finally {
    await b.close();
  }
});
