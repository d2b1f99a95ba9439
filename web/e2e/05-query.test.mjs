// The SQL workspace: a query's grid and its CSV export, byte for byte what `sluice query` writes;
// 10,000 rows × 11 columns streamed into the grid, timed from Run to the first rows painted and to
// the whole result, and scrolled end to end while long tasks are counted (printed, not asserted),
// with only the rows on screen in the DOM; a query failing mid-result shown as incomplete; a long
// query cancelled and gone from pg_stat_activity.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { config, browser, axe, screenshot, signIn, sourceId, report, typeSql, psql, until } from "./lib.mjs";

test("a query's grid, its CSV export as sluice query writes it, a wide result, and a cancel", async () => {
  const b = await browser();
  try {
    const { page } = b;
    await signIn(page, config.admin.login, config.admin.password);
    const id = await sourceId(page, "Shop");
    await page.goto(`/query/${encodeURIComponent(id)}`);
    await typeSql(page, config.csv.sql);
    await page.getByRole("button", { name: "Run" }).click();
    const grid = page.getByRole("grid");
    await page.waitForFunction(() => document.querySelector('[role="grid"]')?.getAttribute("aria-rowcount") === "201");
    await grid.getByText("customer 1", { exact: true }).first().waitFor();
    await axe(page, "the SQL workspace with results");

    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export CSV" }).click()]);
    const got = readFileSync(await download.path());
    const expected = readFileSync(config.csv.expected_path);
    assert.ok(got.equals(expected), `the exported CSV differs from sluice query's (${got.length} vs ${expected.length} bytes)`);

    // 10,000 rows × 11 columns, painted as they arrive: timed from Run to the first frame that
    // shows rows of the new grid, and to the frame after its last row arrived.
    await typeSql(page, config.wide.sql);
    const rows = config.wide.rows;
    await page.evaluate(() => {
      window.__wide = {};
      const before = document.querySelector('[role="grid"]');
      const run = [...document.querySelectorAll("button")].find((b) => b.textContent?.trim() === "Run");
      run.addEventListener("click", () => {
        const t0 = performance.now();
        const seen = () => {
          const g = document.querySelector('[role="grid"]');
          const fresh = g && g !== before;
          if (fresh && window.__wide.first === undefined && g.querySelector('[role="gridcell"]')) {
            window.__wide.first = performance.now() - t0;
            window.__wide.loadingAtFirst = g.getAttribute("aria-busy") === "true";
          }
          if (fresh && g.dataset.state !== "loading") {
            window.__wide.all = performance.now() - t0;
            window.__wide.state = g.dataset.state;
          } else requestAnimationFrame(seen);
        };
        requestAnimationFrame(seen);
      }, { once: true });
    });
    await page.getByRole("button", { name: "Run" }).click();
    await page.waitForFunction(() => window.__wide.all !== undefined, null, { timeout: 120_000 });
    const wide = await page.evaluate(() => window.__wide);
    assert.equal(wide.state, "complete");
    assert.equal(await grid.getAttribute("aria-rowcount"), String(rows + 1));
    await page.getByRole("status").filter({ hasText: `${rows.toLocaleString("en-US")} rows in` }).first().waitFor();
    // Only the rows on screen are in the DOM.
    const inDom = await grid.getByRole("row").count();
    assert.ok(inDom > 1 && inDom < 100, `${inDom} row elements for a result of ${rows} rows`);
    report("grid, 10,000 × 11: row elements in the DOM", inDom, "");
    report("grid, 10,000 × 11: first rows painted while the rest was still arriving", wide.loadingAtFirst ? "yes" : "no", "");
    report("grid, 10,000 × 11: Run to first rows painted", wide.first);
    report("grid, 10,000 × 11: Run to whole result loaded", wide.all);
    await screenshot(page, "sql-workspace");

    // Scroll the whole grid, a screenful at a time, counting long tasks.
    const scrolled = await page.evaluate(async () => {
      const long = [];
      const observer = new PerformanceObserver((list) => list.getEntries().forEach((e) => long.push(e.duration)));
      observer.observe({ type: "longtask", buffered: false });
      const grid = document.querySelector('[role="grid"]');
      const scroller = [grid, ...grid.querySelectorAll("*")].find((e) => e.scrollHeight > e.clientHeight + 10 && getComputedStyle(e).overflowY !== "visible") ?? grid;
      const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
      const t0 = performance.now();
      let frames = 0;
      while (scroller.scrollTop + scroller.clientHeight < scroller.scrollHeight - 1) {
        scroller.scrollTop += scroller.clientHeight;
        await frame();
        frames++;
      }
      await frame();
      observer.disconnect();
      const last = grid.querySelector('[aria-rowindex]:last-of-type')?.getAttribute("aria-rowindex");
      return { long, frames, ms: performance.now() - t0, last };
    });
    report("grid scroll end to end: frames", scrolled.frames, "");
    report("grid scroll end to end: time", scrolled.ms);
    report("grid scroll end to end: long tasks over 50 ms", scrolled.long.length, "");
    if (scrolled.long.length) report("grid scroll end to end: longest task", Math.max(...scrolled.long));
    await page.getByRole("gridcell", { name: String(rows), exact: true }).first().waitFor();

    // A query that fails after its first rows were sent: what arrived is shown as incomplete,
    // never as a result.
    await typeSql(page, "SELECT g, 1 / (g - 5000) AS boom FROM generate_series(1, 10000) g");
    await page.getByRole("button", { name: "Run" }).click();
    await page.getByRole("status").filter({ hasText: /incomplete/ }).first().waitFor();
    await page.getByRole("alert").filter({ hasText: /result is incomplete/ }).first().waitFor();
    assert.equal(await page.locator('[role="grid"][data-state="complete"], [role="grid"][data-state="truncated"]').count(), 0);
    for (const g of await page.getByRole("grid").all()) {
      assert.equal(await g.getAttribute("data-state"), "incomplete");
      assert.match(await g.getAttribute("aria-label"), /incomplete/);
    }
    await axe(page, "the SQL workspace with an incomplete result");

    // Cancel: the statement runs on the server, then is gone from pg_stat_activity.
    await typeSql(page, "SELECT pg_sleep(60)");
    await page.getByRole("button", { name: "Run" }).click();
    const running = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND state = 'active' AND pid <> pg_backend_pid()";
    await until("the statement on the server", () => psql(running) === "1");
    await page.getByRole("button", { name: "Cancel" }).click();
    await until("the statement gone from pg_stat_activity", () => psql(running) === "0", 30_000);
    await page.getByRole("status").filter({ hasText: /cancel/i }).first().waitFor();
    // The broken-off result is a failed load in the console, as it should be.
    assert.deepEqual(b.errors.filter((e) => !/cancel|abort|ERR_INCOMPLETE_CHUNKED_ENCODING/i.test(e)), []);
  } finally {
    await b.close();
  }
});
