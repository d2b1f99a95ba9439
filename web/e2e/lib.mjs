// Shared by the browser tests: the run's settings (written by crates/sluice-cli/tests/browser.rs),
// Debian's Chromium driven by playwright-core, axe-core on every page, screenshots and timings.
import { readFileSync, mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { createRequire } from "node:module";
import { execFileSync } from "node:child_process";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);

/** The run's settings: URLs, the setup link, passwords, the target databases and expected bytes. */
export const config = JSON.parse(readFileSync(process.env.SLUICE_E2E_CONFIG ?? assert.fail("SLUICE_E2E_CONFIG is not set"), "utf8"));

/** A fresh browser with its own throwaway profile; `close()` removes the profile. */
export async function browser() {
  const profile = mkdtempSync(join(tmpdir(), "sluice-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: config.chromium ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    viewport: { width: 1280, height: 800 },
    acceptDownloads: true,
    baseURL: config.base_url,
  });
  const errors = [];
  context.on("weberror", (e) => errors.push(String(e.error())));
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  return {
    context,
    page,
    /** Page errors and console errors so far (CSP violations are console errors). */
    errors,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

/** Runs axe-core on the page as it is; fails on serious or critical violations, naming them. */
export async function axe(page, what) {
  // Evaluated through the DevTools protocol: a script tag would be (rightly) refused by the
  // pages' Content-Security-Policy.
  if (!(await page.evaluate(() => typeof window.axe !== "undefined"))) {
    await page.evaluate(axeSource);
  }
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")) }));
  });
  const bad = result.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad, [], `axe-core on ${what}: ${JSON.stringify(bad, null, 2)}`);
  return result;
}

/** Saves a screenshot of the page as docs/screenshots/NAME.png. */
export async function screenshot(page, name) {
  const path = join(config.screenshots_dir, `${name}.png`);
  mkdirSync(dirname(path), { recursive: true });
  await page.screenshot({ path, animations: "disabled", caret: "hide" });
}

/** A figure for the run's log (printed, never asserted). */
export function report(name, value, unit = "ms") {
  const shown = typeof value === "number" ? value.toFixed(unit === "ms" ? 1 : 0) : value;
  console.log(`perf: ${name}: ${shown} ${unit}`);
}

/** psql against the target cluster as its superuser; answers the unaligned, tuples-only output. */
export function psql(sql) {
  return execFileSync("psql", ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", config.superuser_dsn, "-c", sql], {
    encoding: "utf8",
  }).trim();
}

/** Signs in through the page, as a person does. */
export async function signIn(page, login, password) {
  await page.goto("/signin");
  await page.getByLabel("Login", { exact: true }).fill(login);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("link", { name: "Data Sources" }).waitFor();
}

/** Picks the option of a labelled <select> whose text matches `pattern`. */
export async function choose(page, label, pattern) {
  const select = page.getByLabel(label, { exact: true });
  const options = await select.locator("option").evaluateAll((os) => os.map((o) => ({ value: o.value, text: o.textContent ?? "" })));
  const hit = options.find((o) => pattern.test(o.text) || pattern.test(o.value));
  assert.ok(hit, `no option of ${label} matches ${pattern}: ${JSON.stringify(options)}`);
  await select.selectOption(hit.value);
}

/** The Test Connection result line of `check` once it is decided: its text. */
export async function checkLine(page, check) {
  const item = page.getByRole("list", { name: "Test results" }).getByRole("listitem").filter({ hasText: new RegExp(`^\\s*${check}\\b`) });
  await item.first().filter({ hasText: /pass|warn|fail/ }).waitFor({ timeout: 60_000 });
  return (await item.first().innerText()).trim();
}

/** Waits (bounded) until `probe()` answers something truthy, and answers it. */
export async function until(what, probe, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The id of the source named `name`, asked of the API in the page's session. */
export async function sourceId(page, name) {
  return page.evaluate(async (name) => {
    const r = await fetch("/api/v1/sources", { credentials: "same-origin" });
    return (await r.json()).sources.find((s) => s.name === name)?.id ?? null;
  }, name);
}

/** Replaces the SQL in the workspace's editor with `sql`. */
export async function typeSql(page, sql) {
  const editor = page.getByRole("textbox", { name: "SQL" });
  await editor.click();
  await page.keyboard.press("ControlOrMeta+a");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(sql);
}
