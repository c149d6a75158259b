/**
 * Three `underpass cloud` processes over one PostgreSQL database behind a private haproxy
 * (`balance roundrobin`, health checks on `/healthz`), one `underpass agent` told of relay 1
 * only that keeps a tunnel to each (it learns the others from the cluster's relay set), eight
 * HTTP downloads in flight through the balancer and new SOCKS connections at 20/s.
 * `kill -9` of one relay: only the downloads it carried end, each as an error in curl (never a
 * clean short file), the others arrive whole (SHA-256), new connections succeed through the
 * balancer within 2 s, the agent keeps its tunnels to the survivors; the relay started again on
 * its ports gets the agent back by itself. PostgreSQL stopped for 30 s: every relay goes on
 * serving the configuration it holds, answers writes with a coded 503 and says so in /healthz;
 * once the database is back every relay resyncs, and what happened meanwhile (audit events) is
 * in the database's trail.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  ChildRegistry,
  requireCommand,
  type SpawnResult,
  socksUrl,
  spawnBounded,
} from "../helpers/clients.js";
import { type Haproxy, startHaproxy } from "../helpers/haproxy.js";
import { waitFor } from "../helpers/ports.js";
import { type PostgresCluster, startPostgres } from "../helpers/postgres.js";
import { type CliProcess, type CloudProcess, startAgentProcess, startCloud } from "../helpers/processes.js";
import type { Json } from "../helpers/stack.js";
import { socksConnect, socksReply } from "../helpers/stack.js";
import { bannerEcho, readAll, startTarget, type Target } from "../helpers/targets.js";

const ADMIN_TOKEN = "cluster-faults-admin-token-0123456789";
/** Size of each download, in bytes, and the pace the server sends it at. */
const BLOB_BYTES = 24 * 1024 * 1024;
const CHUNK_BYTES = 64 * 1024;
/** One chunk per this many ms and download: 8 downloads take ~8 s at ~3 MiB/s each. */
const CHUNK_EVERY_MS = 20;
const TRANSFERS = 8;
/** New connections per second through the balancer while the relay dies. */
const PROBES_PER_SECOND = 20;
/** How soon after the kill every new connection must succeed, in ms. */
const RECOVERY_MS = 2_000;
/** How long the database stays down, in ms. */
const OUTAGE_MS = 30_000;

/** An HTTP server that sends the same random blob to everyone, paced, with its length. */
function startBlobServer(blob: Buffer): Promise<{ port: number; server: Server; close(): Promise<void> }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": blob.length });
    let offset = 0;
    const timer = setInterval(() => {
      if (offset >= blob.length) {
        clearInterval(timer);
        res.end();
        return;
      }
      res.write(blob.subarray(offset, offset + CHUNK_BYTES));
      offset += CHUNK_BYTES;
    }, CHUNK_EVERY_MS);
    res.on("close", () => clearInterval(timer));
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      resolve({
        port,
        server,
        close: () =>
          new Promise((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}

interface Probe {
  readonly startedAt: number;
  readonly ok: boolean;
  readonly error?: string;
}

describe("three relays behind haproxy: one killed with SIGKILL, the database stopped for 30 s", () => {
  const registry = new ChildRegistry();
  const dirs: string[] = [];
  let pg: PostgresCluster;
  let blob: Buffer;
  let files: Awaited<ReturnType<typeof startBlobServer>>;
  let echo: Target;
  const relays: CloudProcess[] = [];
  let agent: CliProcess;
  let lb: Haproxy;
  let agentId: string;
  let client: { username: string; password: string };

  before(async () => {
    requireCommand("curl");
    requireCommand("haproxy");
    blob = randomBytes(BLOB_BYTES);
    [pg, files, echo] = await Promise.all([
      startPostgres(),
      startBlobServer(blob),
      startTarget(bannerEcho("220 echo\r\n")),
    ]);
    const url = await pg.createDatabase("faults");
    for (let i = 0; i < 3; i++) {
      const dataDir = mkdtempSync(join(tmpdir(), "underpass-faults-"));
      dirs.push(dataDir);
      relays.push(
        await startCloud({
          dataDir,
          adminToken: ADMIN_TOKEN,
          registry,
          env: { UNDERPASS_DATABASE_URL: url, UNDERPASS_RELAY_ID: `relay-${i + 1}` },
          startTimeoutMs: 60_000,
        }),
      );
    }
    const [first] = relays;
    const created = await first!.admin.addAgent("premises");
    agentId = created.id;
    client = await first!.admin.addClient("flows");
    await first!.admin.addMapping({
      virtualHost: "files.corp",
      virtualPort: 80,
      internalHost: "127.0.0.1",
      internalPort: files.port,
    });
    await first!.admin.addMapping({
      virtualHost: "echo.corp",
      virtualPort: 7,
      internalHost: "127.0.0.1",
      internalPort: echo.port,
    });
    // the configuration written through relay 1 is on every relay (the change feed)
    for (const r of relays) {
      await waitFor(
        async () => {
          const list: Json[] = await r.admin.expect("GET", "/v1/mappings", undefined, 200);
          return list.length === 2 ? true : undefined;
        },
        { timeoutMs: 20_000, intervalMs: 100, what: "both mappings on every relay" },
      );
    }
    // told of relay 1 only: it learns the others from the relay set the cluster advertises
    agent = startAgentProcess({
      relayUrl: relays[0]!.relayUrl,
      token: created.token,
      registry,
    });
    for (const [i, r] of relays.entries())
      await r.admin.waitAgentConnected(agentId, 30_000, `relay-${i + 1}`);
    lb = await startHaproxy({
      relays: relays.map((r, i) => ({
        name: `relay-${i + 1}`,
        socksPort: r.ports.socks,
        tunnelPort: r.ports.tunnel,
        adminPort: r.ports.admin,
      })),
    });
    await waitFor(async () => ((await lb.upServers("socks")).length === 3 ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 100,
      what: "three relays up in haproxy",
    });
  });

  after(async () => {
    await lb?.stop();
    await agent?.stop();
    for (const r of relays) await r.stop();
    await registry.killAll();
    await files?.close();
    await echo?.close();
    await pg?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** One new connection through the balancer: SOCKS5 auth, CONNECT, the greeting, one echo. */
  async function probe(): Promise<Probe> {
    const startedAt = Date.now();
    let s: Socket | undefined;
    try {
      s = await socksConnect(lb.socksPort, client, "echo.corp", 7);
      assert.equal((await readAll(s, 10, 5_000)).toString(), "220 echo\r\n");
      s.write("x");
      assert.equal((await readAll(s, 1, 5_000)).toString(), "x");
      return { startedAt, ok: true };
    } catch (err) {
      return { startedAt, ok: false, error: err instanceof Error ? err.message : String(err) };
    } finally {
      s?.destroy();
    }
  }

  /** The REP byte a CONNECT to `host`:1 gets straight from relay `r`. */
  async function socksReplyCode(r: CloudProcess, host: string): Promise<number | string> {
    const { reply, socket } = await socksReply(r.ports.socks, client, host, 1);
    socket.destroy();
    return reply;
  }

  it("ends only the killed relay's transfers, each as an error; the rest arrive whole; new connections recover within 2 s", async (t) => {
    const out = mkdtempSync(join(tmpdir(), "underpass-faults-out-"));
    dirs.push(out);
    const curl = requireCommand("curl");
    const proxy = socksUrl({ host: "127.0.0.1", port: lb.socksPort, remoteDns: true, ...client });
    const transfers: Promise<SpawnResult>[] = [];
    for (let i = 0; i < TRANSFERS; i++) {
      transfers.push(
        spawnBounded(
          curl,
          [
            "-q",
            "-sS",
            "--proxy",
            proxy,
            "-o",
            join(out, `blob-${i}`),
            "--max-time",
            "120",
            "http://files.corp/blob",
          ],
          { timeoutMs: 130_000, registry },
        ),
      );
    }
    // every download under way: each file has its first MiB
    await waitFor(
      () => {
        for (let i = 0; i < TRANSFERS; i++) {
          try {
            if (statSync(join(out, `blob-${i}`)).size < 1024 * 1024) return undefined;
          } catch {
            return undefined;
          }
        }
        return true;
      },
      { timeoutMs: 60_000, intervalMs: 50, what: "every download past its first MiB" },
    );
    const agentsBefore = await Promise.all(relays.slice(0, 2).map((r) => r.admin.agent(agentId)));

    // new connections at 20/s from now until the end of the run
    const probes: Promise<Probe>[] = [];
    let probing = true;
    const pacer = (async () => {
      while (probing) {
        probes.push(probe());
        await new Promise((r) => setTimeout(r, 1000 / PROBES_PER_SECOND));
      }
    })();

    const victim = relays[2]!;
    // the cluster's connections, as any relay lists them: those the victim carries
    const held: Json[] = await victim.admin.expect("GET", "/v1/connections", undefined, 200);
    const victimTransfers = held.filter(
      (c) => c.virtualHost === "files.corp" && c.relayId === "relay-3",
    ).length;
    victim.kill("SIGKILL");
    const killedAt = Date.now();
    await victim.exited;

    const results = await Promise.all(transfers);
    // keep probing until at least 2 s past the recovery bound
    await waitFor(() => (Date.now() - killedAt > RECOVERY_MS + 2_000 ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: "probing past the recovery bound",
    });
    probing = false;
    await pacer;
    const probed = await Promise.all(probes);

    const whole: number[] = [];
    const failed: number[] = [];
    for (const [i, r] of results.entries()) {
      const got = readFileSync(join(out, `blob-${i}`));
      if (r.code === 0) {
        // curl said done: then it must be the whole blob, byte for byte
        assert.equal(got.length, blob.length, `download ${i}: curl exited 0 with ${got.length} bytes`);
        assert.equal(
          createHash("sha256").update(got).digest("hex"),
          createHash("sha256").update(blob).digest("hex"),
          `download ${i}: content differs`,
        );
        whole.push(i);
      } else {
        assert.ok(got.length < blob.length, `download ${i} failed (${r.code}) with the whole blob`);
        failed.push(i);
      }
    }
    assert.ok(victimTransfers >= 1, "round robin gave the killed relay at least one download");
    assert.equal(
      failed.length,
      victimTransfers,
      `only the killed relay's downloads end: ${victimTransfers} held there, ${failed.length} failed; ${results
        .filter((r) => r.code !== 0)
        .map((r) => r.stderr.trim())
        .join(" | ")}`,
    );
    assert.equal(whole.length, TRANSFERS - victimTransfers);

    const early = probed.filter((p) => p.startedAt >= killedAt && p.startedAt < killedAt + RECOVERY_MS);
    t.diagnostic(
      `killed relay held ${victimTransfers} of ${TRANSFERS} downloads; curl on those: ${results
        .filter((r) => r.code !== 0)
        .map((r) => `exit ${r.code} ${r.stderr.trim()}`)
        .join(
          " | ",
        )}; probes: ${probed.length}, ${early.filter((p) => !p.ok).length} of ${early.length} failed in the first ${RECOVERY_MS} ms after the kill`,
    );
    const late = probed.filter((p) => p.startedAt >= killedAt + RECOVERY_MS);
    assert.ok(late.length >= PROBES_PER_SECOND, `probed ${late.length} times after the recovery bound`);
    const lateFailures = late.filter((p) => !p.ok);
    assert.deepEqual(
      lateFailures.map((p) => `${p.startedAt - killedAt} ms after the kill: ${p.error}`),
      [],
      "every new connection from 2 s after the kill on succeeds",
    );

    // the agent kept its tunnels to the survivors: same tunnels, connected since before the kill
    const agentsAfter = await Promise.all(relays.slice(0, 2).map((r) => r.admin.agent(agentId)));
    const survivorLinks = (a: Json): string[] =>
      (a.links as Json[])
        .filter((l) => l.relayId === "relay-1" || l.relayId === "relay-2")
        .map((l) => `${l.relayId}/${l.tunnelId}`)
        .sort();
    for (const [i, a] of agentsAfter.entries()) {
      assert.equal(a.connected, true, `agent still connected, seen from relay ${i + 1}`);
      assert.equal(survivorLinks(a).length, 2, "a tunnel to each survivor");
      assert.deepEqual(
        survivorLinks(a),
        survivorLinks(agentsBefore[i]!),
        "the same tunnels as before the kill",
      );
      assert.equal(
        a.connectedAt,
        agentsBefore[i]!.connectedAt,
        `agent's tunnel to relay ${i + 1} never dropped`,
      );
    }
  });

  it("gets the agent back, through the relay set, on a relay started again on its ports", async () => {
    const victim = relays[2]!;
    assert.equal(victim.running(), false);
    const restarted = await startCloud({
      dataDir: dirs[2]!,
      adminToken: ADMIN_TOKEN,
      registry,
      ports: victim.ports,
      env: { UNDERPASS_DATABASE_URL: pg.url("faults"), UNDERPASS_RELAY_ID: "relay-3" },
      startTimeoutMs: 60_000,
    });
    relays[2] = restarted;
    await restarted.admin.waitAgentConnected(agentId, 60_000, "relay-3");
    const s = await socksConnect(restarted.ports.socks, client, "echo.corp", 7);
    try {
      assert.equal((await readAll(s, 10, 10_000)).toString(), "220 echo\r\n");
    } finally {
      s.destroy();
    }
    await waitFor(async () => ((await lb.upServers("socks")).length === 3 ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 100,
      what: "the restarted relay back in haproxy's rotation",
    });
  });

  it("PostgreSQL stopped for 30 s: relays serve what they hold, refuse writes with 503, resync after", async (t) => {
    const store = async (r: CloudProcess): Promise<unknown> =>
      ((await r.admin.expect("GET", "/healthz", undefined, 200)) as Json).store;
    const mappingIds = async (r: CloudProcess): Promise<string[]> =>
      ((await r.admin.expect("GET", "/v1/mappings", undefined, 200)) as Json[])
        .map((m) => m.id as string)
        .sort();
    const before = await mappingIds(relays[0]!);
    for (const r of relays) assert.deepEqual(await mappingIds(r), before);

    await pg.stop();
    const stoppedAt = Date.now();
    for (const r of relays)
      await waitFor(async () => ((await store(r)) === "unavailable" ? true : undefined), {
        timeoutMs: 20_000,
        intervalMs: 100,
        what: "every relay to see the database gone",
      });
    let rounds = 0;
    while (Date.now() - stoppedAt < OUTAGE_MS) {
      const r = relays[rounds % relays.length]!;
      rounds++;
      const p = await probe();
      assert.ok(p.ok, `a connection through the balancer during the outage: ${p.error}`);
      const refused = await r.admin.request("POST", "/v1/mappings", {
        virtualHost: `refused-${rounds}.corp`,
        virtualPort: 1,
        internalHost: "127.0.0.1",
        internalPort: echo.port,
      });
      assert.equal(refused.status, 503, JSON.stringify(refused.body));
      assert.equal((refused.body as Json).error, "UP_ERR_STORE_UNAVAILABLE");
      assert.deepEqual(await mappingIds(r), before, "reads answer from what the relay holds");
      // a refusal audited while the database is away: held, written once it is back
      const denied = await socksReplyCode(r, `outage-${rounds}.corp`);
      assert.equal(denied, 0x02, "a CONNECT no mapping covers is refused by the ruleset");
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
    t.diagnostic(
      `${rounds} rounds of traffic, refused writes and denials in ${Date.now() - stoppedAt} ms down`,
    );

    await pg.start();
    const backAt = Date.now();
    for (const r of relays)
      await waitFor(async () => ((await store(r)) === "available" ? true : undefined), {
        timeoutMs: 30_000,
        intervalMs: 100,
        what: "every relay to reach the database again",
      });
    const resyncMs = Date.now() - backAt;
    const added = await relays[1]!.admin.addMapping({
      virtualHost: "after.corp",
      virtualPort: 7,
      internalHost: "127.0.0.1",
      internalPort: echo.port,
    });
    const addedAt = Date.now();
    for (const r of relays)
      await waitFor(async () => ((await mappingIds(r)).includes(added.id) ? true : undefined), {
        timeoutMs: 5_000,
        intervalMs: 20,
        what: "the first change after the outage on every relay",
      });
    const spreadMs = Date.now() - addedAt;
    assert.ok(spreadMs < 1_000, `the first change after the outage reached every relay in ${spreadMs} ms`);
    for (const r of relays)
      assert.deepEqual(await mappingIds(r), [...before, added.id].sort(), "nothing refused was stored");
    // every denial of the outage, from every relay, is in the cluster's one trail
    await waitFor(
      async () => {
        const page = (await relays[0]!.admin.expect(
          "GET",
          "/v1/audit?event=socks.denied&limit=1000",
          undefined,
          200,
        )) as Json;
        const hosts = new Set((page.events as Json[]).map((e) => e.host));
        for (let i = 1; i <= rounds; i++) if (!hosts.has(`outage-${i}.corp`)) return undefined;
        return true;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: "every denial made during the outage in the audit trail" },
    );
    t.diagnostic(
      `every relay back ${resyncMs} ms after the database; the next change on every relay in ${spreadMs} ms`,
    );
  });
});
