// The schema browser over 10,000 tables: its first render and each search keystroke, timed in the
// page (printed, not asserted); the table searched for is found.
import { test } from "node:test";
import assert from "node:assert/strict";
import { config, browser, axe, screenshot, signIn, sourceId, report } from "./lib.mjs";

test("the schema browser finds one table among 10,000 as you type", async () => {
  const b = await browser();
  try {
    const { page } = b;
    await signIn(page, config.admin.login, config.admin.password);
    const id = await sourceId(page, "Shop");
    assert.ok(id, "the source Shop exists");
    await page.goto(`/browse/${encodeURIComponent(id)}`);
    const tree = page.getByRole("tree");
    await tree.getByRole("treeitem").first().waitFor();
    // From the navigation's start to the tree's first items (the catalog's fetch included).
    const firstRender = await page.evaluate(() => performance.now());
    report("schema browser, 10,000 tables: navigation to first tree items", firstRender, "ms");
    await axe(page, "the schema browser");
    await screenshot(page, "schema-browser");

    const search = page.getByLabel("Search relations", { exact: true });
    await search.focus();
    // Each keystroke: from the key event to the next frame painted after the list updated.
    await page.evaluate(() => {
      window.__keystrokes = [];
      const input = document.activeElement;
      input.addEventListener("keydown", () => {
        const t0 = performance.now();
        setTimeout(() => requestAnimationFrame(() => requestAnimationFrame(() => window.__keystrokes.push(performance.now() - t0))), 0);
      });
    });
    const needle = config.search.needle;
    for (const ch of needle) {
      await page.keyboard.type(ch);
      await page.waitForFunction((n) => window.__keystrokes.length >= n, needle.indexOf(ch) + 1);
    }
    const times = await page.evaluate(() => window.__keystrokes);
    times.forEach((ms, i) => report(`schema browser search keystroke ${i + 1} ("${needle.slice(0, i + 1)}")`, ms));
    report("schema browser search keystroke, worst", Math.max(...times));
    await tree.getByRole("treeitem", { name: new RegExp(needle) }).first().waitFor();
    assert.deepEqual(b.errors, []);
  } finally {
    await b.close();
  }
});
