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
    // The needle typed, erased key by key, then typed again qualified by its schema: each
    // keystroke a new search (at least 20 of them).
    const needle = config.search.needle;
    const qualified = `${config.search.schema}.${needle}`;
    const keys = [...needle, ...Array(needle.length).fill("Backspace"), ...qualified];
    for (const [i, key] of keys.entries()) {
      if (key === "Backspace") await page.keyboard.press(key);
      else await page.keyboard.type(key);
      await page.waitForFunction((n) => window.__keystrokes.length >= n, i + 1);
    }
    const times = await page.evaluate(() => window.__keystrokes);
    assert.equal(times.length, keys.length);
    const sorted = [...times].sort((a, b) => a - b);
    report(`schema browser search keystrokes (${times.length}), each`, times.map((t) => t.toFixed(0)).join(" "), "ms");
    report("schema browser search keystroke, p50", sorted[Math.floor(sorted.length / 2)]);
    report("schema browser search keystroke, worst", sorted[sorted.length - 1]);
    await tree.getByRole("treeitem", { name: new RegExp(qualified.replace(".", "\\.")) }).first().waitFor();
    assert.match(await page.getByRole("status").filter({ hasText: /match/ }).first().innerText(), /^1 match\./);
    assert.deepEqual(b.errors, []);
  } finally {
    await b.close();
  }
});
