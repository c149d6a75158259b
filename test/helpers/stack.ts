/**
 * A real relay and a real agent in this process, on loopback port 0, registered through the
 * real admin API. Every test that starts one closes it in its teardown.
 */

import { mkdtemp, rm } from "node:fs/promises";
import { createConnection, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SocksClient } from "socks";
import { type Agent, startAgent } from "../../agent/agent.js";
import type { BindSettings } from "../../agent/bind-listener.js";
import { allowAll, parsePolicy } from "../../agent/policy.js";
import { type Relay, type RelayConfig, startRelay } from "../../cloud/relay.js";
import { createLogger, type Logger, silentLogger } from "../../shared/logger.js";
import { bannerEcho, startTarget, type Target } from "./targets.js";

/** A parsed admin API body; tests read it freely and assert on what they read. */
// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked by assertions, not types
export type Json = any;

export const ADMIN_TOKEN = "test-admin-token-0123456789";

export interface Credentials {
  readonly username: string;
  readonly password: string;
}

export interface Stack {
  readonly relay: Relay;
  readonly dataDir: string;
  readonly agentToken: string;
  readonly agentId: string;
  readonly client: Credentials & { id: string };
  agent: Agent | null;
  socksPort: number;
  api(method: string, url: string, body?: unknown): Promise<{ status: number; body: Json }>;
  addMapping(body: Record<string, unknown>): Promise<{ id: string }>;
  addClient(name: string, location?: string): Promise<Credentials & { id: string }>;
  addAgent(name: string, location?: string): Promise<{ id: string; token: string }>;
  /** `follow: false` keeps the agent to this relay, whatever relays its cluster has. */
  startAgent(options?: {
    token?: string;
    allow?: string;
    tunnels?: number;
    follow?: boolean;
  }): Promise<Agent>;
  close(): Promise<void>;
}

export function testLogger(name: string): Logger {
  return process.env["UNDERPASS_TEST_LOG"] ? createLogger({ name, level: "debug" }) : silentLogger();
}

/** A relay's admin API with the stacks' token, through `inject()`. */
export function adminApiOf(relay: Relay): Stack["api"] {
  return async (method, url, body) => {
    const res = await relay.admin.inject({
      method: method as "GET",
      url,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      ...(body === undefined ? {} : { payload: body as object }),
    });
    return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : null };
  };
}

export async function startStack(
  options: {
    relay?: Partial<RelayConfig>;
    agent?: boolean;
    allow?: string;
    dataDir?: string;
    /** BIND settings of the agents this stack starts. */
    bind?: BindSettings;
  } = {},
): Promise<Stack> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), "underpass-test-")));
  const relay = await startRelay({
    tunnelListen: { host: "127.0.0.1", port: 0 },
    socksListen: { host: "127.0.0.1", port: 0 },
    adminListen: { host: "127.0.0.1", port: 0 },
    dataDir,
    adminToken: ADMIN_TOKEN,
    logger: testLogger("relay"),
    ...options.relay,
  });
  const api = adminApiOf(relay);
  const expect = async (method: string, url: string, body: unknown, status: number): Promise<Json> => {
    const r = await api(method, url, body);
    if (r.status !== status) throw new Error(`${method} ${url} → ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const agentRec = await expect("POST", "/v1/agents", { name: "site-a" }, 201);
  const clientRec = await expect("POST", "/v1/clients", { name: "flow-a" }, 201);
  const agents: Agent[] = [];
  const stack: Stack = {
    relay,
    dataDir,
    agentToken: agentRec.token,
    agentId: agentRec.id,
    client: { id: clientRec.id, username: clientRec.username, password: clientRec.password },
    agent: null,
    socksPort: relay.socksAddress.port,
    api,
    addMapping: (body) => expect("POST", "/v1/mappings", body, 201),
    async addClient(name, location) {
      const c = await expect("POST", "/v1/clients", { name, ...(location ? { location } : {}) }, 201);
      return { id: c.id, username: c.username, password: c.password };
    },
    addAgent: (name, location) =>
      expect("POST", "/v1/agents", { name, ...(location ? { location } : {}) }, 201),
    async startAgent(o = {}) {
      const allow = o.allow ?? options.allow;
      const agent = startAgent({
        relayUrl: `ws://127.0.0.1:${relay.tunnelAddress.port}/tunnel`,
        token: o.token ?? agentRec.token,
        policy: allow ? parsePolicy(allow) : allowAll(),
        logger: testLogger("agent"),
        tunnels: o.tunnels ?? 1,
        backoff: { baseMs: 50, maxMs: 500 },
        ...(o.follow === false ? { followRelays: false } : {}),
        ...(options.bind ? { bind: options.bind } : {}),
      });
      agents.push(agent);
      return agent;
    },
    async close() {
      for (const a of agents) await a.close();
      await relay.close();
      if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
  if (options.agent !== false) {
    stack.agent = await stack.startAgent();
    await stack.agent.waitUp(1, 15_000);
  }
  return stack;
}

/** CONNECT through the relay with the `socks` package; resolves with the connected socket. */
export async function socksConnect(
  socksPort: number,
  creds: Credentials | null,
  host: string,
  port: number,
): Promise<Socket> {
  const { socket } = await SocksClient.createConnection({
    proxy: {
      host: "127.0.0.1",
      port: socksPort,
      type: 5,
      ...(creds ? { userId: creds.username, password: creds.password } : {}),
    },
    command: "connect",
    destination: { host, port },
    timeout: 20_000,
  });
  return socket as Socket;
}

/** A raw SOCKS5 CONNECT by domain name that returns the REP byte (or the auth failure). */
export function socksReply(
  socksPort: number,
  creds: Credentials | null,
  host: string,
  port: number,
  command = 0x01,
): Promise<{ reply: number | "auth-failed" | "no-method"; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ host: "127.0.0.1", port: socksPort });
    let buf = Buffer.alloc(0);
    let stage: "method" | "auth" | "reply" = "method";
    const name = Buffer.from(host);
    const request = Buffer.concat([
      Buffer.from([0x05, command, 0x00, 0x03, name.length]),
      name,
      Buffer.from([port >> 8, port & 0xff]),
    ]);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error("socksReply timed out"));
    }, 20_000);
    s.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.on("connect", () => s.write(Buffer.from(creds ? [0x05, 0x01, 0x02] : [0x05, 0x01, 0x00])));
    s.on("data", (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (stage === "method" && buf.length >= 2) {
        const method = buf[1];
        buf = buf.subarray(2);
        if (method === 0xff) {
          clearTimeout(timer);
          return resolve({ reply: "no-method", socket: s });
        }
        if (method === 0x02 && creds) {
          const u = Buffer.from(creds.username);
          const p = Buffer.from(creds.password);
          s.write(Buffer.concat([Buffer.from([0x01, u.length]), u, Buffer.from([p.length]), p]));
          stage = "auth";
        } else {
          s.write(request);
          stage = "reply";
        }
      }
      if (stage === "auth" && buf.length >= 2) {
        const status = buf[1];
        buf = buf.subarray(2);
        if (status !== 0) {
          clearTimeout(timer);
          return resolve({ reply: "auth-failed", socket: s });
        }
        s.write(request);
        stage = "reply";
      }
      if (stage === "reply" && buf.length >= 2) {
        clearTimeout(timer);
        s.removeAllListeners("data");
        resolve({ reply: buf[1]!, socket: s });
      }
    });
  });
}

/**
 * A greeting echo server on premises behind `virtualHost:21` of the stack's default location:
 * a CONNECT reads `banner`, then its own bytes back. The caller closes the target.
 */
export async function mapEcho(stack: Stack, virtualHost: string, banner: string): Promise<Target> {
  const target = await startTarget(bannerEcho(banner));
  await stack.addMapping({
    virtualHost,
    virtualPort: 21,
    internalHost: "127.0.0.1",
    internalPort: target.port,
  });
  return target;
}

/** Heartbeat and live bounds short enough for a test to see relays join and leave. */
export const FAST_MEMBERSHIP = { heartbeatMs: 200, liveMs: 1_000 };

/**
 * A relay of a cluster over `databaseUrl`, on loopback port 0 unless told, with the admin token
 * of the stacks and fast membership timers; no agent, client or mapping of its own.
 */
export function startClusterRelay(
  databaseUrl: string,
  relayId: string,
  o: Partial<RelayConfig> & { tunnelHost?: string; tunnelPort?: number } = {},
): Promise<Relay> {
  const { tunnelHost, tunnelPort, ...rest } = o;
  return startRelay({
    tunnelListen: { host: tunnelHost ?? "127.0.0.1", port: tunnelPort ?? 0 },
    socksListen: { host: "127.0.0.1", port: 0 },
    adminListen: { host: "127.0.0.1", port: 0 },
    dataDir: "/nonexistent",
    adminToken: ADMIN_TOKEN,
    logger: testLogger(relayId),
    databaseUrl,
    membership: FAST_MEMBERSHIP,
    relayId,
    ...rest,
  });
}
