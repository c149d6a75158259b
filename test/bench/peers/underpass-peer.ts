/**
 * Underpass as a user runs it: `underpass cloud` and `underpass agent` as two processes started
 * from the CLI with the environment DESIGN.md documents, the agent, the SOCKS client and the
 * mappings registered through the admin API over HTTP. With `tls`, the tunnel is wss with a
 * self-signed certificate (test/helpers/tls.ts) the agent trusts through UNDERPASS_CA. With
 * `ctx.tunnelRttMs`, the agent reaches the relay's tunnel port through a delay link (still on
 * loopback, so no insecure-tunnel flag is needed): a distance on the tunnel hop and nowhere else.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { freePort, waitFor, waitForPort } from "../../helpers/ports.js";
import { makeSelfSignedCert } from "../../helpers/tls.js";
import { type DelayLink, startDelayLink } from "../delay-link.js";
import { assertRunning, type Daemon, startDaemon } from "../processes.js";
import type { Destination } from "../socks5-client.js";
import type { Peer, PeerContext, Service } from "./peer.js";

/** Node's flags for the relay and the agent: none, or a CPU profile written at exit. */
export function nodeArgs(ctx: PeerContext, name: string): string[] {
  const profile = ctx.profile ? ["--cpu-prof", `--cpu-prof-dir=${join(ctx.dir, "profiles", name)}`] : [];
  return [...profile, ...ctx.nodeFlags];
}

/** A call to the relay's admin API; the parsed JSON answer, or an error naming the status. */
export type AdminApi = (method: string, path: string, body?: unknown) => Promise<unknown>;

export function adminApi(baseUrl: string, token: string): AdminApi {
  return async (method, path, body) => {
    const res = await fetch(`${baseUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path} → ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
}

/** Maps `service` as the virtual host `<name>.bench`, port for port. */
export async function exposeMapped(api: AdminApi, service: Service): Promise<Destination> {
  const virtualHost = `${service.name}.bench`;
  const start = service.virtualStart ?? service.ports.start;
  const span = service.ports.end - service.ports.start;
  const range = (a: number, n: number): string => (n === 0 ? String(a) : `${a}-${a + n}`);
  await api("POST", "/v1/mappings", {
    virtualHost,
    virtualPort: range(start, span),
    internalHost: service.host,
    internalPort: range(service.ports.start, span),
    description: `bench ${service.name}`,
  });
  return { host: virtualHost, port: start };
}

/** `baseline` runs the build in `ctx.cli` under the baseline-* ids, to compare two builds in one run. */
export async function startUnderpass(ctx: PeerContext, tls: boolean, baseline = false): Promise<Peer> {
  const id = `${baseline ? "baseline" : "underpass"}-${tls ? "wss" : "ws"}` as const;
  const [tunnelPort, socksPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const adminToken = `bench-${randomBytes(12).toString("hex")}`;
  const certs = tls ? await makeSelfSignedCert({ commonName: "underpass-bench relay" }) : null;
  const daemons: Daemon[] = [];
  let link: DelayLink | null = null;
  const stop = async (): Promise<void> => {
    // the agent first, so the relay does not log a lost tunnel; both flush their profiles on SIGTERM
    for (const d of [...daemons].reverse()) await d.stop(10_000);
    await link?.close();
    await certs?.close();
  };

  const api = adminApi(`http://127.0.0.1:${adminPort}`, adminToken);

  try {
    const relay = startDaemon(
      `${id} relay`,
      process.execPath,
      [...nodeArgs(ctx, "relay"), ctx.cli, "cloud"],
      join(ctx.dir, "relay.log"),
      {
        env: {
          ...process.env,
          UNDERPASS_TUNNEL_LISTEN: `127.0.0.1:${tunnelPort}`,
          UNDERPASS_SOCKS_LISTEN: `127.0.0.1:${socksPort}`,
          UNDERPASS_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
          UNDERPASS_DATA_DIR: join(ctx.dir, "relay-data"),
          UNDERPASS_ADMIN_TOKEN: adminToken,
          ...ctx.relayEnv,
          ...(certs ? { UNDERPASS_TLS_CERT: certs.certFile, UNDERPASS_TLS_KEY: certs.keyFile } : {}),
        },
      },
    );
    daemons.push(relay);
    await waitForPort(adminPort, "127.0.0.1", 20_000).catch((err: unknown) => {
      assertRunning(relay);
      throw err;
    });
    await waitForPort(socksPort, "127.0.0.1", 5_000);

    const agentRec = (await api("POST", "/v1/agents", { name: "bench-site" })) as {
      id: string;
      token: string;
    };
    const client = (await api("POST", "/v1/clients", { name: "bench-client" })) as {
      username: string;
      password: string;
    };
    if (ctx.tunnelRttMs !== null) {
      link = await startDelayLink({
        target: { host: "127.0.0.1", port: tunnelPort },
        rttMs: ctx.tunnelRttMs,
      });
    }
    const relayPort = link?.port ?? tunnelPort;
    const agent = startDaemon(
      `${id} agent`,
      process.execPath,
      [...nodeArgs(ctx, "agent"), ctx.cli, "agent"],
      join(ctx.dir, "agent.log"),
      {
        env: {
          ...process.env,
          UNDERPASS_RELAY_URL: `${tls ? "wss" : "ws"}://127.0.0.1:${relayPort}/tunnel`,
          UNDERPASS_AGENT_TOKEN: agentRec.token,
          UNDERPASS_ALLOW: "127.0.0.1:*",
          ...(certs ? { UNDERPASS_CA: certs.certFile } : {}),
        },
      },
    );
    daemons.push(agent);
    await waitFor(
      async () => {
        assertRunning(agent);
        const agents = (await api("GET", "/v1/agents")) as Array<{ id: string; connected: boolean }>;
        return agents.some((a) => a.id === agentRec.id && a.connected);
      },
      { timeoutMs: 20_000, what: `the ${id} agent's tunnel`, intervalMs: 50 },
    );

    return {
      id,
      proxy: { host: "127.0.0.1", port: socksPort, username: client.username, password: client.password },
      expose: (service: Service) => exposeMapped(api, service),
      pids: () => [relay.pid, agent.pid],
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
