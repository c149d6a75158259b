/**
 * The console as an operator uses it, in Debian's chromium, against a real `underpass cloud`, a
 * real `underpass agent` started with the command the console showed, vsftpd, and curl through
 * SOCKS: sign in; add an agent and see it come up without a reload; add the FTP mappings, a
 * range of the wrong length refused next to its field, an overlap linked to its mapping, a range
 * edited in place; the FTP check all green; a client's download appearing with growing bytes,
 * then killed; a denial on the overview and in the audit trail, exported as JSON lines. Each
 * step leaves a screenshot in docs/.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Locator } from "playwright-core";
import { type BrowserUnderTest, openBrowser, screenshot, signIn, textOf } from "../helpers/browser.js";
import { ChildRegistry, curlFtp, formatResult } from "../helpers/clients.js";
import { freePortRange, waitFor } from "../helpers/ports.js";
import {
  type CliProcess,
  type CloudProcess,
  splitCommandLine,
  startAgentProcess,
  startCloud,
} from "../helpers/processes.js";
import { makeFile, startVsftpd, type VsftpdServer } from "../helpers/vsftpd.js";

const ADMIN_TOKEN = "console-operate-admin-token-0123456789";
const HOST = "ftp.plant-1.internal";
const LOCATION = "plant-1";
/**
 * What the download is throttled to (curl --limit-rate), so that it is still running when
 * killed: 128 MiB at 2 MiB/s. Loopback buffers hold tens of MiB and the relay counts bytes as
 * the tunnel window moves, in steps of megabytes, so a slower rate would show them rarely.
 */
const RATE = "2M";
/** Bound on any one thing the page must show, in ms. */
const SHOWN_MS = 20_000;

describe("console: operating a relay in a real browser", () => {
  const registry = new ChildRegistry();
  let dataDir = "";
  let ftp: VsftpdServer;
  let cloud: CloudProcess;
  let agent: CliProcess | undefined;
  let b: BrowserUnderTest;
  let socks: { host: string; port: number; username: string; password: string } | undefined;
  let pasv = { start: 0, end: 0 };

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "underpass-console-operate-"));
    // the filter "host:21" is a substring match: a passive port that starts with 21 (21183) would
    // match it too, so a range with such a port is not taken
    const startsWith21 = (sp: { start: number; end: number }): boolean =>
      /^21/.test(String(sp.start)) || /^21/.test(String(sp.end));
    let span = await freePortRange(10);
    for (let tries = 0; startsWith21(span) && tries < 100; tries++) span = await freePortRange(10);
    assert.ok(!startsWith21(span), `no passive range without a port starting with 21: ${span.start}`);
    pasv = { start: span.start, end: span.end };
    ftp = await startVsftpd({ pasvPorts: span, allowUpload: false, registry });
    await makeFile(ftp.root, "readme.txt", 256);
    await makeFile(ftp.root, "big.bin", 128 * 1024 * 1024);
    cloud = await startCloud({ dataDir, adminToken: ADMIN_TOKEN, registry });
    b = await openBrowser({ baseURL: `http://127.0.0.1:${cloud.ports.admin}` });
  });

  after(async () => {
    await b?.close();
    await agent?.stop();
    await cloud?.stop();
    await ftp?.close();
    await registry.killAll();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const dialog = (): Locator => b.page.locator("dialog[open]");
  const mappingRow = (virtual: string): Locator =>
    b.page.locator("tr[data-mapping-id]").filter({
      has: b.page.locator("th code", { hasText: new RegExp(`^${virtual.replaceAll(".", "\\.")}$`) }),
    });

  it("signs in with the admin token and goes live", async () => {
    const { page } = b;
    await signIn(page, ADMIN_TOKEN, SHOWN_MS);
    assert.match(await textOf(page.locator(".actor")), /^console:[0-9a-f]{8}$/);
    assert.ok(!page.url().includes(ADMIN_TOKEN));
    const stored = await page.evaluate(
      "JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])",
    );
    assert.ok(!String(stored).includes(ADMIN_TOKEN), "the token is kept in no storage");
    // a marker a reload would wipe: later steps prove the page followed events by itself
    await page.evaluate("window.underpassNoReload = true");
  });

  it("adds an agent; the agent run with the command shown comes up without a reload", async () => {
    const { page } = b;
    await page.getByRole("link", { name: "Agents", exact: true }).click();
    const form = page.locator("form[aria-label='Add an agent']");
    await form.getByLabel("Name", { exact: true }).fill("plant-1 gateway");
    await form.getByLabel("Location", { exact: true }).fill(LOCATION);
    await form.getByRole("button", { name: "Add agent", exact: true }).click();
    const command = await textOf(dialog().getByTestId("agent-command"));
    assert.match(await textOf(dialog().getByTestId("agent-env-file")), /^UNDERPASS_AGENT_TOKEN=upa_/m);
    await screenshot(page, "console-agent-added");

    // run exactly what the console printed: VAR=value … underpass agent
    const words = splitCommandLine(command);
    assert.deepEqual(words.slice(-2), ["underpass", "agent"], command);
    const env = Object.fromEntries(
      words.slice(0, -2).map((w) => [w.slice(0, w.indexOf("=")), w.slice(w.indexOf("=") + 1)]),
    );
    assert.equal(env["UNDERPASS_RELAY_URL"], cloud.relayUrl, "the command names this relay's tunnel");
    agent = startAgentProcess({
      relayUrl: env["UNDERPASS_RELAY_URL"]!,
      token: env["UNDERPASS_AGENT_TOKEN"]!,
      registry,
    });

    await page.keyboard.press("Escape");
    await dialog().waitFor({ state: "detached" });
    const row = page.locator("tr[data-agent-id][data-status=up]", { hasText: "plant-1 gateway" });
    await row.waitFor({ timeout: SHOWN_MS });
    assert.match(await textOf(row), /127\.0\.0\.1:\d+/, "the agent's source address");
    assert.equal(await page.evaluate("window.underpassNoReload"), true, "no reload happened");
    await screenshot(page, "console-agents");
  });

  it("adds the FTP mappings: a wrong range length and an overlap shown where they belong, a range edited in place", async () => {
    const { page } = b;
    await page.getByRole("link", { name: "Mappings", exact: true }).click();
    await page.getByTestId("mappings").waitFor();
    const adder = page.getByTestId("add-mapping");
    if ((await adder.getAttribute("open")) === null) await adder.locator("summary").click();
    const form = page.locator("form[aria-label='Add a mapping']");
    const fill = async (f: Record<string, string>): Promise<void> => {
      for (const [label, value] of Object.entries(f))
        await form.getByLabel(label, { exact: true }).fill(value);
    };
    const add = (): Promise<void> => form.getByRole("button", { name: "Add mapping", exact: true }).click();

    await fill({
      "Virtual host": HOST,
      "Virtual port(s)": "21",
      "Internal host": "127.0.0.1",
      "Internal port(s)": String(ftp.port),
      Location: LOCATION,
      Description: "FTP control",
    });
    await form.getByLabel("Protocol").selectOption("ftp");
    await add();
    await mappingRow(`${HOST}:21`).waitFor({ timeout: SHOWN_MS });

    // both sides of a range have the same length: the API's issue lands under "Internal port(s)"
    await fill({
      "Virtual host": HOST,
      "Virtual port(s)": `${pasv.start}-${pasv.end - 2}`,
      "Internal host": "127.0.0.1",
      "Internal port(s)": `${pasv.start}-${pasv.end}`,
      Location: LOCATION,
      Description: "passive data",
    });
    await add();
    const fieldError = form.locator("[data-field-error=internalPort]");
    await fieldError
      .filter({ hasText: /covers 10 port\(s\) but virtualPort covers 8/ })
      .waitFor({ timeout: SHOWN_MS });
    assert.equal(
      await form.getByLabel("Internal port(s)", { exact: true }).getAttribute("aria-invalid"),
      "true",
    );
    await screenshot(page, "console-mapping-error");
    await form.getByLabel("Internal port(s)", { exact: true }).fill(`${pasv.start}-${pasv.end - 2}`);
    await add();
    const narrow = mappingRow(`${HOST}:${pasv.start}-${pasv.end - 2}`);
    await narrow.waitFor({ timeout: SHOWN_MS });

    // an overlap names the mapping it conflicts with, and the link shows that mapping
    await fill({
      "Virtual host": HOST,
      "Virtual port(s)": "21",
      "Internal host": "127.0.0.2",
      "Internal port(s)": "21",
      Location: LOCATION,
    });
    await add();
    const link = form.getByTestId("conflict-link");
    await link.waitFor({ timeout: SHOWN_MS });
    assert.match(
      await textOf(link),
      new RegExp(`${HOST.replaceAll(".", "\\.")}:21 → 127\\.0\\.0\\.1:${ftp.port}`),
    );
    await link.click();
    await page.locator("tr.focused", { hasText: `${HOST}:21` }).waitFor();

    // widen the passive range in place, both sides at once
    await narrow.getByRole("button", { name: "Edit", exact: true }).click();
    const edit = page.locator("tr.editing form");
    await edit.getByLabel("Virtual port(s)", { exact: true }).fill(`${pasv.start}-${pasv.end}`);
    await edit.getByLabel("Internal port(s)", { exact: true }).fill(`${pasv.start}-${pasv.end}`);
    await edit.getByRole("button", { name: "Save", exact: true }).click();
    await mappingRow(`${HOST}:${pasv.start}-${pasv.end}`).waitFor({ timeout: SHOWN_MS });
    const changed = await cloud.admin.expect("GET", "/v1/audit?event=admin.mapping.changed", undefined, 200);
    assert.equal(
      changed.events[0].actor,
      await textOf(page.locator(".actor")),
      "the change names this session",
    );
  });

  it("checks the control mapping and runs the FTP check: every step green", async () => {
    const { page } = b;
    const row = mappingRow(`${HOST}:21`);
    await row.getByRole("button", { name: "Check", exact: true }).click();
    await row
      .getByTestId("check-result")
      .filter({ hasText: /reachable in [\d.]+ ms/ })
      .waitFor({ timeout: SHOWN_MS });
    await row.getByRole("button", { name: "FTP check", exact: true }).click();
    await dialog().getByRole("button", { name: "Run FTP check", exact: true }).click();
    const result = dialog().getByTestId("ftp-check-result");
    await result.waitFor({ timeout: 60_000 });
    const steps: string[] = [];
    for (const li of await result.locator("li.step").all()) {
      steps.push(`${await li.getAttribute("data-step")}=${await li.getAttribute("data-ok")}`);
    }
    assert.deepEqual(
      steps,
      ["connect=true", "greeting=true", "login=true", "epsv=true", "pasv=true", "active=true"],
      await textOf(result),
    );
    assert.equal(await result.getAttribute("data-ok"), "true");
    await screenshot(page, "console-ftp-check");
    await page.keyboard.press("Escape");
    await dialog().waitFor({ state: "detached" });
  });

  it("adds a client; its download shows with growing bytes, and Kill breaks it", async () => {
    const { page } = b;
    await page.getByRole("link", { name: "Clients", exact: true }).click();
    const form = page.locator("form[aria-label='Add a SOCKS client']");
    await form.getByLabel("Name", { exact: true }).fill("ERP integration");
    await form.getByLabel("Location", { exact: true }).fill(LOCATION);
    await form.getByRole("button", { name: "Add client", exact: true }).click();
    const curlLine = await textOf(dialog().getByTestId("client-curl"));
    assert.match(
      await textOf(dialog().getByTestId("client-java")),
      /-DsocksProxyHost=127\.0\.0\.1 -DsocksProxyPort=\d+/,
    );
    assert.match(
      await textOf(dialog().getByTestId("client-proxychains")),
      /^socks5 127\.0\.0\.1 \d+ \S+ ups_\S+$/m,
    );
    await screenshot(page, "console-client-added");
    await dialog().getByRole("button", { name: "Close", exact: true }).first().click();
    const proxy = new URL(/--proxy '([^']+)'/.exec(curlLine)?.[1] ?? "");
    assert.equal(proxy.protocol, "socks5h:");
    socks = {
      host: proxy.hostname,
      port: Number(proxy.port),
      username: decodeURIComponent(proxy.username),
      password: decodeURIComponent(proxy.password),
    };

    await page.getByRole("link", { name: "Connections", exact: true }).click();
    const download = curlFtp({
      url: `ftp://${HOST}/big.bin`,
      socks: { ...socks, remoteDns: true },
      output: join(dataDir, "big.bin"),
      extraArgs: ["--limit-rate", RATE],
      timeoutMs: 90_000,
      registry,
    });
    // the data connection: the one whose bytes from the target grow
    const data = page.locator("tr[data-connection-id]").filter({
      has: page.locator(`code`, { hasText: new RegExp(`^${HOST.replaceAll(".", "\\.")}:(?!21$)\\d+$`) }),
    });
    await data.waitFor({ timeout: SHOWN_MS });
    const down = data.getByTestId("bytes-down");
    const bytesNow = async (): Promise<number> => Number(await down.getAttribute("data-bytes"));
    const bytesAbove = (n: number) =>
      waitFor(async () => (await bytesNow()) > n, {
        timeoutMs: SHOWN_MS,
        intervalMs: 100,
        what: `more than ${n} bytes down`,
      });
    await bytesAbove(100_000);
    const first = await bytesNow();
    await bytesAbove(first);
    assert.ok((await bytesNow()) > first, "the bytes grew without a reload");
    await screenshot(page, "console-connections");
    const filter = page.getByLabel("Filter", { exact: true });
    await filter.fill(`${HOST}:21`);
    await page
      .getByTestId("connection-count")
      .filter({ hasText: /^1 of 2 live connection/ })
      .waitFor();
    assert.equal(await data.count(), 0, "the filter hides the data connection");
    await filter.fill("");
    await data.waitFor();

    await data.getByRole("button", { name: "Kill", exact: true }).click();
    await dialog().getByRole("button", { name: "Kill connection", exact: true }).click();
    const r = await download;
    assert.notEqual(r.code, 0, `curl must fail once its data connection is killed\n${formatResult(r)}`);
    assert.ok(!r.timedOut, formatResult(r));
    await data.waitFor({ state: "detached", timeout: SHOWN_MS });
    const killed = await cloud.admin.expect("GET", "/v1/audit?event=admin.connection.killed", undefined, 200);
    assert.match(killed.events[0].actor, /^console:[0-9a-f]{8}$/);
  });

  it("shows a denial on the overview and in the audit trail, and exports the trail as JSON lines", async () => {
    const { page } = b;
    assert.ok(socks, "the client of the step before");
    await page.getByRole("link", { name: "Overview", exact: true }).click();
    await page.getByTestId("traffic-chart").waitFor();
    const r = await curlFtp({
      url: `ftp://${HOST}:2222/`,
      socks: { ...socks, remoteDns: true },
      timeoutMs: 15_000,
      registry,
    });
    assert.equal(r.code, 97, `SOCKS refusal\n${formatResult(r)}`);
    const denial = page.getByTestId("denials").locator("li", { hasText: `${HOST}:2222` });
    await denial.waitFor({ timeout: SHOWN_MS });
    assert.match(await textOf(denial), /no mapping of location plant-1 covers/);
    assert.match(await textOf(page.getByTestId("card-denials")), /Denials, last hour\s*1$/);
    // the chart has drawn the download: more than one sample, a line that left zero
    await page.waitForFunction(
      "Number(document.querySelector('[data-testid=traffic-chart]')?.getAttribute('data-samples')) > 1",
    );
    await screenshot(page, "console-overview");

    await page.getByTestId("card-denials").click();
    const row = page.locator("tr[data-event='socks.denied']", { hasText: "port=2222" });
    await row.waitFor({ timeout: SHOWN_MS });
    assert.equal(await page.getByLabel("Event", { exact: true }).inputValue(), "socks.denied");
    await screenshot(page, "console-audit");
    const [file] = await Promise.all([
      page.waitForEvent("download"),
      page.getByTestId("audit-export").click(),
    ]);
    assert.match(file.suggestedFilename(), /^underpass-audit-.*\.jsonl$/);
    const lines = (await readFile(await file.path(), "utf8")).trimEnd().split("\n");
    const events = lines.map((l) => JSON.parse(l) as { event: string; port?: number });
    assert.ok(events.length >= 1 && events.every((e) => e.event === "socks.denied"), lines.join("\n"));
    assert.ok(events.some((e) => e.port === 2222));
  });

  it("rotates the client's password (the old one stops) and revokes the agent (its tunnel closes)", async () => {
    const { page } = b;
    assert.ok(socks, "the client of the steps before");
    await page.getByRole("link", { name: "Clients", exact: true }).click();
    const row = page.locator("tr[data-client-id]", { hasText: "ERP integration" });
    await row.getByRole("button", { name: "Rotate", exact: true }).click();
    await dialog().getByRole("button", { name: "Rotate password", exact: true }).click();
    const fresh = await textOf(page.locator("dialog[open]").getByTestId("client-password"));
    assert.match(fresh, /^ups_/);
    assert.notEqual(fresh, socks.password);
    await page.keyboard.press("Escape");
    await dialog().waitFor({ state: "detached" });
    const old = await curlFtp({
      url: `ftp://${HOST}/readme.txt`,
      socks: { ...socks, remoteDns: true },
      timeoutMs: 15_000,
      registry,
    });
    assert.equal(old.code, 97, `the old password is refused\n${formatResult(old)}`);
    const now = await curlFtp({
      url: `ftp://${HOST}/readme.txt`,
      socks: { ...socks, password: fresh, remoteDns: true },
      timeoutMs: 15_000,
      registry,
    });
    assert.equal(now.code, 0, `the new one works\n${formatResult(now)}`);

    await page.getByRole("link", { name: "Agents", exact: true }).click();
    const agentRow = page.locator("tr[data-agent-id]", { hasText: "plant-1 gateway" });
    await agentRow.getByRole("button", { name: "Revoke", exact: true }).click();
    await dialog().getByRole("button", { name: "Revoke agent", exact: true }).click();
    await agentRow.waitFor({ state: "detached", timeout: SHOWN_MS });
    // the tunnel's end reaches the trail, and the page shows it without a reload
    await page.getByTestId("disconnects").locator("li").first().waitFor({ timeout: SHOWN_MS });
    assert.equal(await page.evaluate("window.underpassNoReload"), true, "no reload happened");
    assert.deepEqual(b.pageErrors, [], "no uncaught error in the page");
  });
});
