/**
 * Three `underpass cloud` processes over one PostgreSQL database behind a private haproxy
 * (`balance roundrobin`, health checks on `/healthz`), one `underpass agent` with a tunnel to
 * each, eight HTTP downloads in flight through the balancer and new SOCKS connections at 20/s.
 * `kill -9` of one relay: only the downloads it carried end, each as an error in curl (never a
 * clean short file), the others arrive whole (SHA-256), new connections succeed through the
 * balancer within 2 s, the agent keeps its tunnels to the survivors; the relay started again on
 * its ports gets the agent back by itself.
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
import { socksConnect } from "../helpers/stack.js";
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

describe("three relays behind haproxy, one killed with SIGKILL", () => {
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
    agent = startAgentProcess({
      relayUrl: relays.map((r) => r.relayUrl).join(","),
      token: created.token,
      registry,
    });
    for (const r of relays) await r.admin.waitAgentConnected(agentId, 30_000);
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
    const held: Json[] = await victim.admin.expect("GET", "/v1/connections", undefined, 200);
    const victimTransfers = held.filter((c) => c.virtualHost === "files.corp").length;
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
    for (const [i, a] of agentsAfter.entries()) {
      assert.equal(a.connected, true, `agent still connected to relay ${i + 1}`);
      assert.equal(
        a.connectedAt,
        agentsBefore[i]!.connectedAt,
        `agent's tunnel to relay ${i + 1} never dropped`,
      );
    }
  });

  it("gets the agent back on a relay started again on its ports", async () => {
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
    await restarted.admin.waitAgentConnected(agentId, 60_000);
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
});
