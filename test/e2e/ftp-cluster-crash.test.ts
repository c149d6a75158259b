/**
 * FTP across relays when a relay dies: three `underpass cloud` processes over one PostgreSQL
 * database (a private cluster) behind a private haproxy (`balance roundrobin`), an `underpass
 * agent` with all three in UNDERPASS_RELAY_URL, vsftpd behind an FTP-aware mapping.
 *
 * - `kill -9` of the relay that holds a control connection: the data port it announced stops
 *   counting on the survivors once its lease runs out (a data CONNECT there is refused `0x02`,
 *   not granted and then refused by the gone server), with no relay left to clean up.
 * - `kill -9` of the relay that carries a passive data connection mid-transfer: curl fails,
 *   never ending with a clean short file, and the next download through the balancer
 *   succeeds on the survivors.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, stat } from "node:fs/promises";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { LEASE_MS } from "../../cloud/cluster/relay-lease.js";
import { ChildRegistry, curlFtp, formatResult } from "../helpers/clients.js";
import { loginAnonymously, readReply } from "../helpers/ftp-dialogue.js";
import { addFtpAwareMapping, UNROUTABLE_PASV_ADDRESS } from "../helpers/ftp-servers.js";
import { type Haproxy, startHaproxy } from "../helpers/haproxy.js";
import { freePortRange, waitFor } from "../helpers/ports.js";
import { type PostgresCluster, startPostgres } from "../helpers/postgres.js";
import { type CliProcess, type CloudProcess, startAgentProcess, startCloud } from "../helpers/processes.js";
import type { Json } from "../helpers/stack.js";
import { socksConnect, socksReply } from "../helpers/stack.js";
import { makeFile, sha256File, startVsftpd, type VsftpdServer } from "../helpers/vsftpd.js";

const MiB = 1024 * 1024;
const ADMIN_TOKEN = "test-admin-token-crash-0123456789";
const VHOST = "vsftpd.aware.test";
const CONTROL = 21;
const RELAYS = 3;
/** SOCKS5 reply "connection not allowed by ruleset" (RFC 1928 §6). */
const NOT_ALLOWED = 0x02;

describe("FTP across three relay processes behind haproxy when one is killed", () => {
  const children = new ChildRegistry();
  const sockets: Socket[] = [];
  const relays: CloudProcess[] = [];
  let cluster: PostgresCluster;
  let db: pg.Pool;
  let haproxy: Haproxy;
  let agent: CliProcess;
  let ftp: VsftpdServer;
  let work: string;
  let client: { username: string; password: string };

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "underpass-ftp-cluster-crash-"));
    cluster = await startPostgres();
    ftp = await startVsftpd({
      pasvPorts: await freePortRange(10),
      pasvAddress: UNROUTABLE_PASV_ADDRESS,
      registry: children,
    });
    const url = await cluster.createDatabase("ftp_crash");
    db = new pg.Pool({ connectionString: url, max: 2 });
    // an idle connection the server ends (at teardown) is no test failure
    db.on("error", () => {});
    for (let i = 0; i < RELAYS; i++) {
      const dataDir = join(work, `relay-${i}`);
      relays.push(
        await startCloud({
          dataDir,
          adminToken: ADMIN_TOKEN,
          env: { UNDERPASS_DATABASE_URL: url, UNDERPASS_RELAY_ID: `relay-${i}` },
          registry: children,
        }),
      );
    }
    const admin = relays[0]!.admin;
    const agentRec = await admin.addAgent("site");
    client = await admin.addClient("flow");
    await addFtpAwareMapping(admin, ftp, VHOST, CONTROL);
    agent = startAgentProcess({
      relayUrl: relays.map((r) => r.relayUrl).join(","),
      token: agentRec.token,
      registry: children,
    });
    haproxy = await startHaproxy({
      relays: relays.map((r, i) => ({
        name: `relay${i}`,
        socksPort: r.ports.socks,
        tunnelPort: r.ports.tunnel,
        adminPort: r.ports.admin,
      })),
    });
    // the agent on every relay, every relay with the mapping, every relay up at the balancer
    for (const [i, r] of relays.entries()) {
      await r.admin.waitAgentConnected(agentRec.id, 30_000, `relay-${i}`);
      await waitFor(async () => (await r.admin.expect("GET", "/v1/mappings", undefined, 200)).length === 1, {
        what: "the mapping on every relay",
      });
    }
    await waitFor(async () => (await haproxy.upServers("socks")).length === RELAYS, {
      timeoutMs: 30_000,
      what: "haproxy to count every relay up",
    });
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    await db?.end();
    await haproxy?.stop();
    await agent?.stop();
    for (const r of relays) await r.stop();
    await children.killAll();
    await ftp?.close();
    await cluster?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** The live relays that carry a connection matching `match` (GET /v1/connections: every relay's). */
  async function carrying(match: (c: Json) => boolean): Promise<CloudProcess[]> {
    const asked = relays.find((r) => r.running());
    if (asked === undefined) return [];
    const list: Json[] = await asked.admin.expect("GET", "/v1/connections", undefined, 200);
    return relays.filter((r, i) => r.running() && list.some((c) => c.relayId === `relay-${i}` && match(c)));
  }

  /** Leases that still run, from the database. */
  async function liveLeases(): Promise<number> {
    const r = await db.query<{ n: number }>(
      "select count(*)::int as n from ftp_relay_leases where alive_until > now()",
    );
    return r.rows[0]!.n;
  }

  it("kill -9 of the relay holding the control connection: its announced port is refused on the survivors once its lease ran out", async () => {
    const control = await socksConnect(haproxy.socksPort, client, VHOST, CONTROL);
    sockets.push(control);
    await loginAnonymously(control);
    control.write("EPSV\r\n");
    const reply = await readReply(control, /^229 /);
    const port = Number(/\(\|\|\|(\d+)\|\)/.exec(reply)?.[1]);
    assert.ok(port >= ftp.pasvPorts.start && port <= ftp.pasvPorts.end, reply);
    const [holder] = await waitFor(
      async () => {
        const h = await carrying((c) => c.virtualPort === CONTROL);
        return h.length === 1 ? h : undefined;
      },
      { what: "the relay holding the control connection" },
    );
    assert.equal(
      (await db.query("select 1 from ftp_data_expectations where port = $1", [port])).rowCount,
      1,
      "the announced port is in the database",
    );
    const t0 = Date.now();
    holder!.kill("SIGKILL");
    assert.equal((await holder!.exited).signal, "SIGKILL");
    // no goodbye: the row stays until the holder's lease runs out
    await waitFor(async () => (await liveLeases()) === RELAYS - 1, {
      timeoutMs: LEASE_MS + 10_000,
      intervalMs: 100,
      what: "the killed relay's lease to run out",
    });
    const ranOutMs = Date.now() - t0;
    assert.ok(ranOutMs <= LEASE_MS + 5_000, `the lease ran out ${ranOutMs} ms after the kill`);
    const survivor = relays.find((r) => r.running())!;
    const data = await socksReply(survivor.ports.socks, client, VHOST, port);
    data.socket.destroy();
    assert.equal(data.reply, NOT_ALLOWED, "the dead relay's port is no longer open anywhere");
    process.stdout.write(`# the killed relay's lease ran out ${ranOutMs} ms after kill -9\n`);
  });

  it("kill -9 of the relay carrying a passive data connection mid-transfer: curl fails, the next download through the balancer succeeds", async () => {
    const source = await makeFile(ftp.root, "big.bin", 32 * MiB);
    const out = join(work, "cut.bin");
    // 2 MiB/s: the whole file would take 16 s, so the kill below is surely mid-transfer
    const download = curlFtp({
      url: `ftp://${VHOST}:${CONTROL}/big.bin`,
      socks: { host: "127.0.0.1", port: haproxy.socksPort, ...client, remoteDns: true },
      output: out,
      extraArgs: ["--limit-rate", "2M"],
      timeoutMs: 60_000,
      registry: children,
    });
    await waitFor(
      async () => {
        const s = await stat(out).catch(() => undefined);
        return s !== undefined && s.size >= 256 * 1024;
      },
      { timeoutMs: 30_000, intervalMs: 20, what: "the first 256 KiB of the download" },
    );
    const controls = await carrying((c) => c.virtualPort === CONTROL);
    const [carrier] = await carrying(
      (c) => c.virtualPort >= ftp.pasvPorts.start && c.virtualPort <= ftp.pasvPorts.end,
    );
    assert.ok(carrier, "a relay carries the data connection");
    assert.ok(
      !controls.includes(carrier),
      "the data connection on another relay than the control connection",
    );
    carrier.kill("SIGKILL");
    const r = await download;
    assert.equal(r.timedOut, false, formatResult(r));
    assert.notEqual(r.code, 0, `curl must not end as if complete\n${formatResult(r)}`);
    const got = await stat(out);
    assert.ok(got.size < source.size, `${got.size} of ${source.size} bytes`);

    const again = join(work, "again.bin");
    const t0 = Date.now();
    const next = await waitFor(
      async () => {
        const n = await curlFtp({
          url: `ftp://${VHOST}:${CONTROL}/big.bin`,
          socks: { host: "127.0.0.1", port: haproxy.socksPort, ...client, remoteDns: true },
          output: again,
          timeoutMs: 60_000,
          registry: children,
        });
        return n.code === 0 ? n : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: "a download through the survivors" },
    );
    assert.equal(next.code, 0);
    assert.equal(await sha256File(again), source.sha256);
    process.stdout.write(
      `# curl exit ${r.code} after the kill; a full download again ${Date.now() - t0} ms later\n`,
    );
  });
});
