/**
 * Underpass as a cluster: three `underpass cloud` processes over one PostgreSQL database (a
 * private cluster, test/helpers/postgres.ts), a private haproxy in front of their SOCKS ports
 * (`balance roundrobin`, health checks on `/healthz`, test/helpers/haproxy.ts), and one
 * `underpass agent` with a tunnel to each relay. Clients connect to haproxy, so every figure
 * pays the balancer's hop and lands on each relay in turn. Tunnels are ws on loopback.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { type Haproxy, startHaproxy } from "../../helpers/haproxy.js";
import { freePort, waitFor, waitForPort } from "../../helpers/ports.js";
import { type PostgresCluster, startPostgres } from "../../helpers/postgres.js";
import { assertRunning, type Daemon, startDaemon } from "../processes.js";
import type { Peer, PeerContext, Service } from "./peer.js";
import { type AdminApi, adminApi, exposeMapped, nodeArgs } from "./underpass-peer.js";

export const CLUSTER_RELAYS = 3;

interface RelayProcess {
  readonly daemon: Daemon;
  readonly api: AdminApi;
  readonly tunnelPort: number;
  readonly socksPort: number;
  readonly adminPort: number;
}

export async function startUnderpassCluster(ctx: PeerContext): Promise<Peer> {
  const adminToken = `bench-${randomBytes(12).toString("hex")}`;
  const relays: RelayProcess[] = [];
  let agent: Daemon | null = null;
  let pg: PostgresCluster | null = null;
  let lb: Haproxy | null = null;
  const stop = async (): Promise<void> => {
    await lb?.stop();
    await agent?.stop(10_000);
    for (const r of relays) await r.daemon.stop(10_000);
    await pg?.close();
  };

  try {
    pg = await startPostgres();
    const databaseUrl = await pg.createDatabase("bench");
    for (let i = 1; i <= CLUSTER_RELAYS; i++) {
      const [tunnelPort, socksPort, adminPort] = [await freePort(), await freePort(), await freePort()];
      const daemon = startDaemon(
        `underpass-cluster relay ${i}`,
        process.execPath,
        [...nodeArgs(ctx, `relay-${i}`), ctx.cli, "cloud"],
        join(ctx.dir, `relay-${i}.log`),
        {
          env: {
            ...process.env,
            UNDERPASS_TUNNEL_LISTEN: `127.0.0.1:${tunnelPort}`,
            UNDERPASS_SOCKS_LISTEN: `127.0.0.1:${socksPort}`,
            UNDERPASS_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
            UNDERPASS_DATA_DIR: join(ctx.dir, `relay-${i}-data`),
            UNDERPASS_ADMIN_TOKEN: adminToken,
            UNDERPASS_DATABASE_URL: databaseUrl,
          },
        },
      );
      const relay = {
        daemon,
        api: adminApi(`http://127.0.0.1:${adminPort}`, adminToken),
        tunnelPort,
        socksPort,
        adminPort,
      };
      relays.push(relay);
      // one at a time: the first migrates the empty database, the others find it done
      await waitForPort(adminPort, "127.0.0.1", 30_000).catch((err: unknown) => {
        assertRunning(daemon);
        throw err;
      });
      await waitForPort(socksPort, "127.0.0.1", 5_000);
    }
    const first = relays[0]!.api;
    const agentRec = (await first("POST", "/v1/agents", { name: "bench-site" })) as {
      id: string;
      token: string;
    };
    const client = (await first("POST", "/v1/clients", { name: "bench-client" })) as {
      username: string;
      password: string;
    };
    agent = startDaemon(
      "underpass-cluster agent",
      process.execPath,
      [...nodeArgs(ctx, "agent"), ctx.cli, "agent"],
      join(ctx.dir, "agent.log"),
      {
        env: {
          ...process.env,
          UNDERPASS_RELAY_URL: relays.map((r) => `ws://127.0.0.1:${r.tunnelPort}/tunnel`).join(","),
          UNDERPASS_AGENT_TOKEN: agentRec.token,
          UNDERPASS_ALLOW: "127.0.0.1:*",
        },
      },
    );
    const running = agent;
    for (const r of relays) {
      await waitFor(
        async () => {
          assertRunning(running);
          const agents = (await r.api("GET", "/v1/agents")) as Array<{ id: string; connected: boolean }>;
          return agents.some((a) => a.id === agentRec.id && a.connected);
        },
        { timeoutMs: 30_000, what: "the cluster agent's tunnel to every relay", intervalMs: 50 },
      );
    }
    lb = await startHaproxy({
      relays: relays.map((r, i) => ({
        name: `relay-${i + 1}`,
        socksPort: r.socksPort,
        tunnelPort: r.tunnelPort,
        adminPort: r.adminPort,
      })),
    });
    const balancer = lb;
    await waitFor(
      async () => ((await balancer.upServers("socks")).length === CLUSTER_RELAYS ? true : undefined),
      {
        timeoutMs: 30_000,
        intervalMs: 100,
        what: "every relay up in haproxy",
      },
    );

    return {
      id: "underpass-cluster",
      proxy: {
        host: "127.0.0.1",
        port: balancer.socksPort,
        username: client.username,
        password: client.password,
      },
      async expose(service: Service) {
        const destination = await exposeMapped(first, service);
        // written through relay 1, served by all three once the change feed delivered it
        for (const r of relays.slice(1)) {
          await waitFor(
            async () => {
              const mappings = (await r.api("GET", "/v1/mappings")) as Array<{ virtualHost: string }>;
              return mappings.some((m) => m.virtualHost === destination.host) ? true : undefined;
            },
            { timeoutMs: 10_000, intervalMs: 20, what: `mapping ${destination.host} on every relay` },
          );
        }
        return destination;
      },
      pids: () => [...relays.map((r) => r.daemon.pid), running.pid],
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
