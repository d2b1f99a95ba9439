// The audit log shows the queries the flows ran: the exported one and the cancelled one.
import { test } from "node:test";
import { config, browser, axe, screenshot, signIn } from "./lib.mjs";
import assert from "node:assert/strict";

test("the audit log shows both queries, the exported and the cancelled one", async () => {
  const b = await browser();
  try {
    const { page } = b;
    await signIn(page, config.admin.login, config.admin.password);
    await page.getByRole("link", { name: "Audit log" }).click();
    const main = page.locator("main");
    await main.getByText(config.csv.sql).first().waitFor();
    await main.getByText("SELECT pg_sleep(60)").first().waitFor();
    await main.getByText(/cancelled/i).first().waitFor();
    await axe(page, "the audit log");
    await screenshot(page, "audit-log");
    assert.deepEqual(b.errors, []);
  } finally {
    await b.close();
  }
});
