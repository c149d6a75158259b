/**
 * The relay and the agent as the operator runs them — `underpass cloud` and `underpass agent`
 * child processes configured through the environment — and what happens when either dies:
 * a download cut by the agent's death must fail loudly, and an agent must find a restarted
 * relay by itself, with the stored credentials and mappings still in force.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ChildRegistry, curlFtp, formatResult, type SocksProxy } from "../helpers/clients.js";
import { freePortRange, waitFor } from "../helpers/ports.js";
import {
  type CliProcess,
  type CloudProcess,
  type LogLine,
  startAgentProcess,
  startCloud,
} from "../helpers/processes.js";
import { makeFile, sha256File, startVsftpd, type VsftpdServer } from "../helpers/vsftpd.js";

const MiB = 1024 * 1024;
const VIRTUAL_HOST = "ftp.corp.example";
const ADMIN_TOKEN = "resilience-admin-token-0123456789";

interface Site {
  readonly ftp: VsftpdServer;
  readonly dataDir: string;
  cloud: CloudProcess;
  agent: CliProcess;
  agentId: string;
  agentToken: string;
  client: { username: string; password: string };
}

/** vsftpd, `underpass cloud`, an agent, a SOCKS client and the two FTP mappings. */
async function startSite(children: ChildRegistry, name: string): Promise<Site> {
  const pasvPorts = await freePortRange(10);
  const range = `${pasvPorts.start}-${pasvPorts.end}`;
  const ftp = await startVsftpd({
    pasvPorts,
    pasvAddress: "10.255.255.1",
    allowUpload: false,
    registry: children,
  });
  const dataDir = await mkdtemp(join(tmpdir(), `underpass-e2e-${name}-`));
  const cloud = await startCloud({ dataDir, adminToken: ADMIN_TOKEN, registry: children });
  const agentRec = await cloud.admin.addAgent(`${name}-agent`);
  const client = await cloud.admin.addClient(`${name}-flow`);
  await cloud.admin.addMapping({
    virtualHost: VIRTUAL_HOST,
    virtualPort: 21,
    internalHost: "127.0.0.1",
    internalPort: ftp.port,
  });
  await cloud.admin.addMapping({
    virtualHost: VIRTUAL_HOST,
    virtualPort: range,
    internalHost: "127.0.0.1",
    internalPort: range,
  });
  const allow = `127.0.0.1:${ftp.port},${range}`;
  const agent = startAgentProcess({
    relayUrl: cloud.relayUrl,
    token: agentRec.token,
    allow,
    registry: children,
  });
  await cloud.admin.waitAgentConnected(agentRec.id);
  return { ftp, dataDir, cloud, agent, agentId: agentRec.id, agentToken: agentRec.token, client };
}

async function stopSite(site: Site | undefined): Promise<void> {
  if (site === undefined) return;
  await site.agent.stop();
  await site.cloud.stop();
  await site.ftp.close();
  await rm(site.dataDir, { recursive: true, force: true });
}

function socksOf(site: Site): SocksProxy & { remoteDns: true } {
  return { host: "127.0.0.1", port: site.cloud.ports.socks, ...site.client, remoteDns: true };
}

/** Bytes of `path` that equal the start of `source`; both are read whole (tests use MiB sizes). */
async function matchingPrefix(path: string, source: string): Promise<{ size: number; same: boolean }> {
  const [got, want] = await Promise.all([readFile(path), readFile(source)]);
  return { size: got.length, same: got.length <= want.length && want.subarray(0, got.length).equals(got) };
}

describe("underpass agent killed (SIGKILL) in the middle of a download", () => {
  const children = new ChildRegistry();
  let site: Site | undefined;
  let work: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "underpass-e2e-kill-"));
    site = await startSite(children, "kill-agent");
  });

  after(async () => {
    await children.killAll();
    await stopSite(site);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("curl fails with a reset (exit 56) and a file shorter than the source, never a clean short file", async () => {
    assert.ok(site);
    const source = await makeFile(site.ftp.root, "big.bin", 48 * MiB);
    const out = join(work, "cut.bin");
    // 2 MiB/s: the whole file would take 24 s, so the kill below is surely mid-transfer.
    const download = curlFtp({
      url: `ftp://${VIRTUAL_HOST}/big.bin`,
      socks: socksOf(site),
      output: out,
      extraArgs: ["--limit-rate", "2M"],
      timeoutMs: 60_000,
      registry: children,
    });
    const before = await waitFor(
      async () => {
        const s = await stat(out).catch(() => undefined);
        return s !== undefined && s.size >= 256 * 1024 ? s.size : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 20, what: "the first 256 KiB of the download" },
    );
    const t0 = performance.now();
    site.agent.kill("SIGKILL");
    const r = await download;
    const failedAfterMs = Math.round(performance.now() - t0);
    const { signal } = await site.agent.exited;
    assert.equal(signal, "SIGKILL");
    assert.equal(r.timedOut, false, formatResult(r));
    // 56 = receive failure: the relay resets the data connection (DESIGN: a broken stream
    // reaches the client as a reset, never as a clean end of file).
    assert.equal(r.code, 56, `curl must fail with a reset, not end short\n${formatResult(r)}`);
    assert.match(r.stderr, /reset by peer/i, formatResult(r));
    const got = await matchingPrefix(out, source.path);
    assert.ok(got.size >= before && got.size < source.size, `${got.size} of ${source.size} bytes`);
    assert.ok(got.same, "the bytes that did arrive are the source's first bytes");
    // The relay notices the tunnel is gone: GET /v1/agents shows it disconnected.
    await waitFor(async () => (await site!.cloud.admin.agent(site!.agentId)).connected === false, {
      timeoutMs: 20_000,
      what: "the killed agent shown disconnected",
    });
    process.stdout.write(
      `# agent killed with ${before} bytes on disk; curl exit ${r.code} ${failedAfterMs} ms later ` +
        `with ${got.size} of ${source.size} bytes\n`,
    );
  });
});

describe("underpass cloud killed and restarted on the same ports and data dir", () => {
  const children = new ChildRegistry();
  let site: Site | undefined;
  let work: string;
  let file: { path: string; sha256: string; size: number };

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "underpass-e2e-restart-"));
    site = await startSite(children, "restart-relay");
    file = await makeFile(site.ftp.root, "report.bin", 8 * MiB);
  });

  after(async () => {
    await children.killAll();
    await stopSite(site);
    if (work) await rm(work, { recursive: true, force: true });
  });

  for (const signal of ["SIGKILL", "SIGTERM"] as const) {
    it(`after ${signal} the same agent reconnects by itself and the old credentials and mappings work`, async () => {
      assert.ok(site);
      const mappingsBefore = await site.cloud.admin.expect("GET", "/v1/mappings", undefined, 200);
      const agentPid = site.agent.child.pid;
      const isReconnect = (l: LogLine): boolean => l.msg === "reconnecting to the relay";
      const reconnectsBefore = site.agent.logs().filter(isReconnect).length;
      const old = site.cloud;
      if (signal === "SIGKILL") old.kill("SIGKILL");
      else await old.stop();
      const status = await old.exited;
      if (signal === "SIGKILL") assert.equal(status.signal, "SIGKILL");
      else assert.equal(status.code, 0, old.describe());
      // The agent notices the tunnel is gone.
      await site.agent.waitForLog(isReconnect, { count: reconnectsBefore + 1, timeoutMs: 20_000 });

      const t0 = performance.now();
      site.cloud = await startCloud({
        dataDir: site.dataDir,
        adminToken: ADMIN_TOKEN,
        ports: old.ports,
        registry: children,
      });
      const listening = performance.now();
      const entry = await site.cloud.admin.waitAgentConnected(site.agentId, 20_000);
      const back = performance.now();
      assert.ok(site.agent.running(), "the agent was never restarted");
      assert.equal(site.agent.child.pid, agentPid);
      assert.equal(entry.connected, true);

      const mappingsAfter = await site.cloud.admin.expect("GET", "/v1/mappings", undefined, 200);
      assert.deepEqual(mappingsAfter, mappingsBefore);
      const out = join(work, `after-${signal}.bin`);
      const r = await curlFtp({
        url: `ftp://${VIRTUAL_HOST}/report.bin`,
        socks: socksOf(site),
        output: out,
        timeoutMs: 60_000,
        registry: children,
      });
      assert.equal(r.code, 0, formatResult(r));
      assert.equal(await sha256File(out), file.sha256);
      const secs = (ms: number): string => (ms / 1000).toFixed(2);
      process.stdout.write(
        `# relay ${signal}: agent back ${secs(back - listening)} s after the relay listened again ` +
          `(${secs(back - t0)} s after the restart began)\n`,
      );
    });
  }
});
