import { ApiError, errorOf, get, headers, networkError, patch, post } from "../api";
import { copyButton, Field, field, h } from "../dom";
import { readNdjson } from "../lib/ndjson";
import { navigate } from "../router";
import { Check, SourceView } from "../types";
import { badge, busy, clearErrors, describe, errorBox, input, showError } from "./common";

const SSLMODES: [string, string][] = [
  ["verify-full", "Recommended: encrypted, the certificate is signed by the CA and names this host."],
  ["verify-ca", "Encrypted and signed by the CA, but any host name is accepted."],
  ["require", "Encrypted, but the certificate is not checked: an impostor could answer."],
  ["prefer", "Encrypted if the server offers it, else plaintext: not safe on untrusted networks."],
  ["allow", "Plaintext unless the server insists on encryption."],
  ["disable", "Never encrypted: only on a network you fully trust."],
];

function textarea(name: string, placeholder = ""): HTMLTextAreaElement {
  return h("textarea", { name, rows: 4, spellcheck: "false", autocomplete: "off", placeholder, class: "mono" });
}

/** A PEM field: paste into it, or load a file into it (the text is sent, never a path). */
function pemField(label: string, name: string, placeholder: string, help?: string): Field {
  const area = textarea(name, placeholder);
  const f = field(label, area, help);
  const fileInput = h("input", { type: "file", class: "visually-hidden", tabindex: "-1", "aria-hidden": "true" });
  const upload = h("button", { type: "button", class: "secondary small" }, `Upload ${label.toLowerCase()}`);
  upload.addEventListener("click", () => fileInput.click());
  fileInput.addEventListener("change", async () => {
    const file = fileInput.files?.[0];
    if (!file) return;
    if (file.size > 256 * 1024) {
      f.setError("That file is larger than 256 KB; a PEM certificate or key is a few KB.");
      return;
    }
    area.value = await file.text();
    area.dispatchEvent(new Event("input", { bubbles: true }));
    fileInput.value = "";
  });
  f.row.append(h("div", { class: "row-actions" }, upload, fileInput));
  return f;
}

export async function sourceFormPage(id: string | null): Promise<HTMLElement> {
  const existing = id ? await get<SourceView>(`/sources/${encodeURIComponent(id)}`) : null;

  const name = field("Name", input({ name: "name", required: true }));
  const networkSelect = h(
    "select",
    { name: "network" },
    h("option", { value: "direct" }, "Direct"),
    h("option", { value: "ssh" }, "SSH tunnel"),
    h("option", { value: "private_endpoint" }, "Private endpoint"),
  );
  const network = field("Network", networkSelect);
  const host = field("Host", input({ name: "host", autocomplete: "off", spellcheck: "false" }));
  const port = field("Port", input({ name: "port", inputmode: "numeric", value: "5432" }));
  const database = field("Database", input({ name: "database", autocomplete: "off" }));
  const user = field("User", input({ name: "user", autocomplete: "off" }));
  const password = field("Password", input({ type: "password", name: "password", autocomplete: "new-password" }));
  const sslSelect = h("select", { name: "sslmode" }, SSLMODES.map(([m]) => h("option", { value: m }, m)));
  const sslHelp = h("span", {});
  const sslmode = field("SSL mode", sslSelect, sslHelp);
  const showSslHelp = () => (sslHelp.textContent = SSLMODES.find(([m]) => m === sslSelect.value)?.[1] ?? "");
  sslSelect.addEventListener("change", showSslHelp);
  const ca = pemField("CA certificate", "sslrootcert", "-----BEGIN CERTIFICATE-----", "PEM text, or system for the operating system's trust store.");
  const cert = pemField("Client certificate", "sslcert", "-----BEGIN CERTIFICATE-----");
  const key = pemField("Client key", "sslkey", "-----BEGIN PRIVATE KEY-----");
  const tlsName = field("TLS server name", input({ name: "tls_server_name", autocomplete: "off" }), "The database's own name, which its certificate carries.");
  const sshHost = field("SSH host", input({ name: "ssh.host", autocomplete: "off" }));
  const sshPort = field("SSH port", input({ name: "ssh.port", inputmode: "numeric", value: "22" }));
  const sshUser = field("SSH user", input({ name: "ssh.user", autocomplete: "off" }));
  const sshKey = pemField("SSH private key", "ssh.private_key", "-----BEGIN OPENSSH PRIVATE KEY-----");
  const sshPass = field("SSH passphrase", input({ type: "password", name: "ssh.passphrase", autocomplete: "new-password" }));
  let generatedKeyId: string | null = null;
  let approvedHostKey: string | null = null;
  const generated = h("div", { class: "generated", "aria-live": "polite" });
  const generate = h("button", { type: "button", class: "secondary small" }, "Generate key pair");
  generate.addEventListener("click", async () => {
    busy(generate, true);
    generated.replaceChildren();
    try {
      const pair = await post<{ key_id: string; public_key: string; fingerprint: string }>(
        "/ssh-keys",
        existing ? { source_id: existing.id } : {},
      );
      generatedKeyId = existing ? null : pair.key_id;
      sshKey.input.value = "";
      sshKey.input.setAttribute("placeholder", "Sluice's generated key (its private half never leaves the service)");
      const line = h("code", { class: "keyline" }, pair.public_key);
      generated.append(
        h("p", {}, "Add this line to the bastion's ~/.ssh/authorized_keys for the SSH user:"),
        h("div", { class: "copyline" }, line, copyButton(() => pair.public_key)),
        h("p", { class: "small muted" }, `Fingerprint ${pair.fingerprint}.`, existing ? " It is now this source's key." : " It becomes this source's key when you save."),
      );
    } catch (e) {
      generated.append(errorBox(e));
    } finally {
      busy(generate, false);
    }
  });
  sshKey.row.querySelector(".row-actions")?.append(generate);
  sshKey.row.append(generated);

  const secrets: [Field, boolean][] = [
    [password, existing?.password_set ?? false],
    [key, existing?.sslkey_set ?? false],
    [sshKey, existing?.ssh?.private_key_set ?? false],
    [sshPass, existing?.ssh?.passphrase_set ?? false],
  ];
  for (const [f, set] of secrets) {
    if (existing) {
      f.input.setAttribute("placeholder", set ? "unchanged" : "not set");
      const note = h("span", { class: "small muted unchanged" }, set ? " (unchanged unless typed)" : "");
      f.row.querySelector("label")?.append(note);
      f.input.addEventListener("input", () => (note.textContent = f.input.value ? " (will be replaced)" : set ? " (unchanged unless typed)" : ""));
    }
  }

  if (existing) {
    name.input.value = existing.name;
    networkSelect.value = existing.network;
    host.input.value = existing.host;
    port.input.value = String(existing.port);
    database.input.value = existing.database;
    user.input.value = existing.user;
    sslSelect.value = existing.sslmode;
    ca.input.value = existing.sslrootcert ?? "";
    cert.input.value = existing.sslcert ?? "";
    tlsName.input.value = existing.tls_server_name ?? "";
    if (existing.ssh) {
      sshHost.input.value = existing.ssh.host;
      sshPort.input.value = String(existing.ssh.port);
      sshUser.input.value = existing.ssh.user;
      if (existing.ssh.public_key) {
        const pub = existing.ssh.public_key;
        generated.append(
          h("p", {}, "The bastion's authorized_keys must hold Sluice's public key:"),
          h("div", { class: "copyline" }, h("code", { class: "keyline" }, pub), copyButton(() => pub)),
        );
      }
    }
  } else {
    sslSelect.value = "verify-full";
  }
  showSslHelp();

  const sshSet = h("fieldset", { class: "group" }, h("legend", {}, "SSH bastion"), sshHost.row, sshPort.row, sshUser.row, sshKey.row, sshPass.row);
  const tlsSet = h("fieldset", { class: "group" }, h("legend", {}, "TLS"), sslmode.row, ca.row, cert.row, key.row, tlsName.row);
  const showNetwork = () => {
    const n = networkSelect.value;
    sshSet.hidden = n !== "ssh";
    tlsName.row.hidden = n !== "private_endpoint";
  };
  networkSelect.addEventListener("change", showNetwork);
  showNetwork();

  const fields: Record<string, Field> = {
    name, network, host, port, database, user, password, sslmode, sslrootcert: ca, sslcert: cert, sslkey: key,
    tls_server_name: tlsName, "ssh.host": sshHost, "ssh.port": sshPort, "ssh.user": sshUser,
    "ssh.private_key": sshKey, "ssh.passphrase": sshPass,
  };

  let dirty = false;
  const portOf = (f: Field, label: string): number | null => {
    const text = f.input.value.trim();
    if (!text) return null;
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1 || n > 65535) {
      f.setError(`${label} must be a whole number from 1 to 65535.`);
      throw new Error("invalid");
    }
    return n;
  };

  /** The form as the API takes it; secrets only when typed; on an edit, only what is set. */
  const body = (): Record<string, unknown> => {
    const out: Record<string, unknown> = {
      name: name.input.value.trim(),
      network: networkSelect.value,
      host: host.input.value.trim(),
      database: database.input.value.trim(),
      user: user.input.value.trim(),
      sslmode: sslSelect.value,
    };
    const p = portOf(port, "Port");
    if (p !== null) out.port = p;
    if (ca.input.value.trim() || existing?.sslrootcert) out.sslrootcert = ca.input.value.trim();
    if (cert.input.value.trim() || existing?.sslcert) out.sslcert = cert.input.value.trim();
    if (key.input.value.trim()) out.sslkey = key.input.value;
    if (password.input.value) out.password = password.input.value;
    if (networkSelect.value === "private_endpoint") {
      if (tlsName.input.value.trim()) out.tls_server_name = tlsName.input.value.trim();
    }
    if (networkSelect.value === "ssh") {
      const ssh: Record<string, unknown> = { host: sshHost.input.value.trim(), user: sshUser.input.value.trim() };
      const sp = portOf(sshPort, "SSH port");
      if (sp !== null) ssh.port = sp;
      if (sshKey.input.value.trim()) ssh.private_key = sshKey.input.value;
      else if (generatedKeyId) ssh.private_key_id = generatedKeyId;
      if (sshPass.input.value) ssh.passphrase = sshPass.input.value;
      if (approvedHostKey) ssh.host_key = approvedHostKey;
      out.ssh = ssh;
    }
    return out;
  };

  const box = h("div");
  const results = h("ol", { class: "checks", "aria-label": "Test results" });
  const testStatus = h("p", { role: "status", "aria-live": "polite", class: "status-line" });
  const testButton = h("button", { type: "button", class: "secondary" }, "Test Connection");
  const saveButton = h("button", { type: "submit" }, "Save");

  const checkItem = (c: Check): HTMLElement => {
    const kind = c.status === "pass" ? "ok" : c.status === "warn" ? "warn" : c.status === "fail" ? "fail" : "muted";
    const li = h(
      "li",
      { class: `check ${kind}` },
      h("div", { class: "check-head" }, h("span", { class: "check-id" }, c.id), " ", badge(kind, c.status), " ", h("span", {}, c.summary), h("span", { class: "small muted" }, ` ${c.elapsed_ms} ms`)),
      c.detail ? h("p", { class: "detail" }, c.detail) : null,
    );
    if (c.fix) {
      const fix = c.fix;
      const looksLikeSql = /^\s*(--|GRANT|REVOKE|ALTER|CREATE|SET|SELECT)\b/i.test(fix) || fix.includes(";\n");
      li.append(
        looksLikeSql
          ? h("div", { class: "fix" }, h("pre", { class: "mono" }, fix), copyButton(() => fix))
          : h("div", { class: "fix" }, h("p", {}, fix), fix.includes("`") ? copyButton(() => fix) : null),
      );
    }
    const hk = c.host_key;
    if (hk) {
      const approve = h("button", { type: "button" }, "Approve host key");
      const warn = hk.status === "changed"
        ? h("p", { class: "notice fail" }, "The bastion's host key CHANGED since it was approved. Approve only after its owners confirm the new key.")
        : null;
      li.append(
        h("div", { class: "hostkey" }, warn,
          h("p", {}, `The bastion presented a host key Sluice does not trust yet (${hk.status}). Compare it with the bastion's own (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub):`),
          h("p", {}, h("code", { class: "fingerprint" }, hk.fingerprint), ` ${hk.algorithm}`),
          approve),
      );
      approve.addEventListener("click", async () => {
        busy(approve, true);
        try {
          if (existing) {
            await post(`/sources/${encodeURIComponent(existing.id)}/ssh-host-key`, { fingerprint: hk.fingerprint });
          } else {
            approvedHostKey = hk.fingerprint;
          }
          testStatus.textContent = `Host key ${hk.fingerprint} approved; testing again.`;
          await runTest();
        } catch (e) {
          li.append(errorBox(e));
        } finally {
          busy(approve, false);
        }
      });
    }
    return li;
  };

  let running: AbortController | null = null;
  const runTest = async () => {
    running?.abort();
    const controller = new AbortController();
    running = controller;
    clearErrors(fields, box);
    results.replaceChildren();
    // A new source is tested as the form stands; a saved one as it is stored (its secrets are
    // not in this page), so changes are saved before they are tested.
    let payload: Record<string, unknown> | null = null;
    if (!existing) {
      try {
        payload = body();
      } catch {
        return;
      }
    }
    busy(testButton, true);
    testStatus.textContent = existing ? (dirty ? "Testing the saved settings (save to test your changes)…" : "Testing the saved source…") : "Testing…";
    const path = payload ? "/sources/test" : `/sources/${encodeURIComponent(existing!.id)}/test`;
    try {
      const response = await fetch(`/api/v1${path}`, {
        method: "POST",
        credentials: "same-origin",
        headers: headers("POST", { "Content-Type": "application/json", Accept: "application/x-ndjson" }),
        body: JSON.stringify(payload ?? {}),
        signal: controller.signal,
      }).catch((e) => {
        throw networkError(e);
      });
      if (!response.ok) throw await errorOf(response);
      if (!response.body) throw new ApiError(0, { code: "stream", message: "The test's answer had no body." });
      const got: { summary: { ok: boolean; server_version?: string | null } | null } = { summary: null };
      await readNdjson(response.body, (v) => {
        if (!v || typeof v !== "object") return;
        if ("id" in v) results.append(checkItem(v as Check));
        else if ("summary" in v) got.summary = (v as { summary: { ok: boolean } }).summary;
      });
      const s = got.summary;
      testStatus.textContent = s
        ? s.ok
          ? `Connection works${s.server_version ? ` (PostgreSQL ${s.server_version})` : ""}.`
          : "Connection test failed: see the checks below. You can still save."
        : "The test ended early.";
    } catch (e) {
      if (running !== controller) return;
      testStatus.textContent = "";
      showError(e, fields, box);
    } finally {
      if (running === controller) {
        busy(testButton, false);
        running = null;
      }
    }
  };
  testButton.addEventListener("click", () => void runTest());

  const form = h(
    "form",
    { class: "source-form", novalidate: true },
    h("fieldset", { class: "group" }, h("legend", {}, "Connection"), name.row, network.row, host.row, port.row, database.row, user.row, password.row),
    tlsSet,
    sshSet,
    box,
    h("div", { class: "form-actions" }, testButton, saveButton),
    testStatus,
    results,
  );
  form.addEventListener("input", () => (dirty = true));
  form.addEventListener("change", () => (dirty = true));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(fields, box);
    let payload: Record<string, unknown>;
    try {
      payload = body();
    } catch {
      return;
    }
    if (!payload.name) return name.setError("Give the source a name.");
    busy(saveButton, true);
    try {
      if (existing) {
        await patch(`/sources/${encodeURIComponent(existing.id)}`, payload);
      } else {
        await post("/sources", payload);
      }
      navigate("/sources");
    } catch (err) {
      showError(err, fields, box);
      if (describe(err).field?.startsWith("ssh.") && networkSelect.value !== "ssh") box.append(errorBox(err));
    } finally {
      busy(saveButton, false);
    }
  });

  return h(
    "section",
    {},
    h("h1", {}, existing ? `Edit ${existing.name}` : "Add Data Source"),
    h("p", { class: "muted" }, existing ? "Secret fields are left as they are unless you type a new value." : "PostgreSQL. Fill the form, test the connection, then save."),
    form,
  );
}
