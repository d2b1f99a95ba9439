// An SSH source: the bastion's unknown host key is shown with its fingerprint, approved, and the
// test then passes through the tunnel.
import { test } from "node:test";
import assert from "node:assert/strict";
import { config, browser, axe, signIn, choose, checkLine } from "./lib.mjs";

const t = config.target;
const s = config.ssh;

test("an SSH source: unknown host key, approved, then the test passes", async () => {
  const b = await browser();
  try {
    const { page } = b;
    await signIn(page, config.admin.login, config.admin.password);
    await page.goto("/sources/new");
    await page.getByLabel("Name", { exact: true }).fill("Shop via bastion");
    await choose(page, "Network", /ssh/i);
    await page.getByLabel("SSH host", { exact: true }).fill(s.host);
    await page.getByLabel("SSH port", { exact: true }).fill(String(s.port));
    await page.getByLabel("SSH user", { exact: true }).fill(s.user);
    await page.getByLabel("SSH private key", { exact: true }).fill(s.private_key);
    await page.getByLabel("Host", { exact: true }).fill(s.db_host);
    await page.getByLabel("Port", { exact: true }).fill(String(t.port));
    await page.getByLabel("Database", { exact: true }).fill(t.database);
    await page.getByLabel("User", { exact: true }).fill(t.user);
    await page.getByLabel("Password", { exact: true }).fill(t.password);
    await choose(page, "SSL mode", /verify-full/);
    await page.getByLabel("CA certificate", { exact: true }).fill(t.ca_pem);

    await page.getByRole("button", { name: "Test Connection" }).click();
    const ssh = await checkLine(page, "ssh");
    assert.match(ssh, /fail/, ssh);
    assert.ok(ssh.includes(s.host_key_fingerprint), `the fingerprint is shown: ${ssh}`);
    await axe(page, "the form with an unknown host key");
    await page.getByRole("button", { name: "Approve host key" }).click();
    // Approving tests again: through the tunnel, every stage passes.
    const list = page.getByRole("list", { name: "Test results" });
    await list.getByRole("listitem").filter({ hasText: /^\s*ssh\b.*pass/s }).waitFor({ timeout: 60_000 });
    const auth = await checkLine(page, "auth");
    assert.match(auth, /pass/, auth);
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByRole("link", { name: "Data Sources" }).click();
    await page.getByText("Shop via bastion", { exact: true }).first().waitFor();
    assert.deepEqual(b.errors, []);
  } finally {
    await b.close();
  }
});
