/**
 * Every agent to every relay: three real relays over one private PostgreSQL database and a
 * real agent given relay A's URL only. The agent learns B and C from A's welcome and keeps
 * tunnels to all three; C stopping drops it from the agent's relays, C started again is added
 * again by itself; a SOCKS client on any relay reaches the agent.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import { WebSocket } from "ws";
import { type Agent, startAgent } from "../../agent/agent.js";
import { allowAll } from "../../agent/policy.js";
import type { Relay } from "../../cloud/relay.js";
import { DEFAULT_LIMITS, PROTOCOL_VERSION } from "../../shared/tunnel/constants.js";
import type { Frame } from "../../shared/tunnel/frame.js";
import { encodeFrame, FrameDecoder } from "../../shared/tunnel/frame-codec.js";
import { ChildRegistry } from "../helpers/clients.js";
import { waitFor } from "../helpers/ports.js";
import { type PostgresCluster, startPostgres } from "../helpers/postgres.js";
import { startCloud } from "../helpers/processes.js";
import {
  ADMIN_TOKEN,
  FAST_MEMBERSHIP,
  type Json,
  type Stack,
  socksConnect,
  startClusterRelay,
  startStack,
  testLogger,
} from "../helpers/stack.js";
import { bannerEcho, readAll, startTarget, type Target } from "../helpers/targets.js";

const FAST = FAST_MEMBERSHIP;

describe("every agent to every relay", () => {
  let cluster: PostgresCluster;
  let target: Target;
  let url: string;
  let a: Stack;
  const others: Relay[] = [];

  before(async () => {
    [cluster, target] = await Promise.all([startPostgres(), startTarget(bannerEcho("220 echo\r\n"))]);
  });
  after(async () => {
    await target?.close();
    await cluster?.close();
  });
  afterEach(async () => {
    await a?.close();
    for (const r of others.splice(0)) await r.close();
  });

  async function relay(relayId: string, tunnelPort = 0): Promise<Relay> {
    const r = await startClusterRelay(url, relayId, { tunnelPort });
    others.push(r);
    return r;
  }

  const tunnelUrl = (r: Relay) => `ws://127.0.0.1:${r.tunnelAddress.port}/tunnel`;

  async function reaches(socksPort: number): Promise<void> {
    const s = await socksConnect(socksPort, a.client, "svc.example", 21);
    try {
      assert.equal((await readAll(s, 10)).toString(), "220 echo\r\n");
    } finally {
      s.destroy();
    }
  }

  function relaysOf(agent: Agent): string[] {
    return agent.relays().sort();
  }

  it("learns B and C from A, drops C when it stops, adds it again when it is back", async () => {
    url = await cluster.createDatabase("relay_set");
    a = await startStack({ agent: false, relay: { databaseUrl: url, membership: FAST, relayId: "relay-a" } });
    const b = await relay("relay-b");
    let c = await relay("relay-c");
    await a.addMapping({
      virtualHost: "svc.example",
      virtualPort: 21,
      internalHost: "127.0.0.1",
      internalPort: target.port,
    });
    const agent = await a.startAgent();
    const all = [tunnelUrl(a.relay), tunnelUrl(b), tunnelUrl(c)].sort();
    await waitFor(() => agent.upCount() === 3, { timeoutMs: 15_000, what: "tunnels to A, B and C" });
    assert.deepEqual(relaysOf(agent), all);
    for (const r of [a.relay, b, c]) assert.equal(r.registry.statusOf(a.agentId).connected, true, r.relayId);

    // a SOCKS client on any relay reaches the agent
    for (const port of [a.socksPort, b.socksAddress.port, c.socksAddress.port]) await reaches(port);

    // C stops cleanly: its row goes, A and B tell the agent, which forgets C
    const cPort = c.tunnelAddress.port;
    const t0 = Date.now();
    await c.close();
    others.splice(others.indexOf(c), 1);
    await waitFor(() => agent.relays().length === 2, { timeoutMs: 10_000, what: "the agent to drop C" });
    const droppedMs = Date.now() - t0;
    assert.deepEqual(relaysOf(agent), [tunnelUrl(a.relay), tunnelUrl(b)].sort());
    assert.ok(droppedMs < 3_000, `C dropped after ${droppedMs} ms`);

    // C starts again on its port: it registers, and the agent adds it by itself
    c = await relay("relay-c", cPort);
    await waitFor(() => agent.upCount() === 3 && agent.relays().length === 3, {
      timeoutMs: 15_000,
      what: "the agent to add C again",
    });
    assert.deepEqual(relaysOf(agent), all);
    await waitFor(() => c.registry.statusOf(a.agentId).connected, { what: "C to hold the agent" });
    await reaches(c.socksAddress.port);

    // the relays count what they hold in their heartbeat
    await waitFor(() => a.relay.membership.relays().every((r) => r.agents === 1), {
      timeoutMs: 5_000,
      what: "each relay's row to count the agent",
    });
  });

  it("drops a relay killed with SIGKILL within the live bound, and adds it again when it is back", async () => {
    url = await cluster.createDatabase("relay_set_kill");
    a = await startStack({ agent: false, relay: { databaseUrl: url, membership: FAST, relayId: "relay-a" } });
    const dataDir = mkdtempSync(join(tmpdir(), "underpass-relay-set-"));
    const registry = new ChildRegistry();
    const env = {
      UNDERPASS_DATABASE_URL: url,
      UNDERPASS_RELAY_ID: "relay-k",
      UNDERPASS_RELAY_HEARTBEAT_MS: "200",
      UNDERPASS_RELAY_LIVE_MS: "1000",
    };
    let k = await startCloud({ dataDir, adminToken: ADMIN_TOKEN, registry, env, startTimeoutMs: 60_000 });
    try {
      const agent = await a.startAgent();
      await waitFor(() => agent.upCount() === 2, { timeoutMs: 20_000, what: "tunnels to A and K" });
      assert.deepEqual(relaysOf(agent), [tunnelUrl(a.relay), k.relayUrl].sort());

      k.kill("SIGKILL");
      const t0 = Date.now();
      await k.exited;
      // its row stays, its heartbeat stops: A drops it after the live bound, and the agent follows
      await waitFor(() => agent.relays().length === 1, { timeoutMs: 10_000, what: "the agent to drop K" });
      const droppedMs = Date.now() - t0;
      assert.ok(
        droppedMs >= FAST.liveMs - 2 * FAST.heartbeatMs,
        `dropped after ${droppedMs} ms: before the bound`,
      );
      assert.ok(droppedMs < FAST.liveMs + 3_000, `dropped after ${droppedMs} ms`);
      assert.equal(a.relay.membership.relays().find((r) => r.id === "relay-k")?.live, false);

      // started again on its ports: it takes its row back and the agent adds it by itself
      k = await startCloud({
        dataDir,
        adminToken: ADMIN_TOKEN,
        registry,
        env,
        ports: k.ports,
        startTimeoutMs: 60_000,
      });
      await waitFor(() => agent.upCount() === 2 && agent.relays().length === 2, {
        timeoutMs: 20_000,
        what: "the agent to add K again",
      });
      await waitFor(
        async () => (await k.admin.agent(a.agentId)).links.some((l: Json) => l.relayId === "relay-k"),
        {
          timeoutMs: 10_000,
          what: "K to hold the agent",
        },
      );
    } finally {
      await k.stop();
      await registry.killAll();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("sends RELAYS frames only to agents that announce the capability: an older agent never sees one", async () => {
    url = await cluster.createDatabase("relay_set_versions");
    a = await startStack({ agent: false, relay: { databaseUrl: url, membership: FAST, relayId: "relay-a" } });
    /** A raw tunnel that says hello with `capabilities` and records every frame it gets. */
    const rawTunnel = async (capabilities: string[]) => {
      const ws = new WebSocket(`ws://127.0.0.1:${a.relay.tunnelAddress.port}/tunnel`, {
        perMessageDeflate: false,
      });
      const frames: Frame[] = [];
      const decoder = new FrameDecoder(DEFAULT_LIMITS);
      ws.on("message", (data: Buffer) => decoder.push(data, (f) => frames.push(f)));
      await once(ws, "open");
      ws.send(
        encodeFrame({
          type: "hello",
          body: { version: PROTOCOL_VERSION, token: a.agentToken, agentVersion: "0.0.1", capabilities },
        }),
      );
      return { ws, frames };
    };
    const older = await rawTunnel(["connect", "bind"]);
    const newer = await rawTunnel(["connect", "bind", "relays"]);
    try {
      await waitFor(() => older.frames.length > 0 && newer.frames.length > 0, { what: "both welcomed" });
      for (const t of [older, newer]) {
        const welcome = t.frames[0];
        assert.equal(welcome?.type, "welcome");
        assert.deepEqual((welcome as Json).body.relays, [{ id: "relay-a", url: tunnelUrl(a.relay) }]);
      }
      const b = await relay("relay-b");
      await waitFor(() => newer.frames.some((f) => f.type === "relays"), {
        timeoutMs: 5_000,
        what: "a RELAYS frame for the agent that follows the set",
      });
      const told = newer.frames.filter((f) => f.type === "relays").at(-1);
      assert.deepEqual(told, {
        type: "relays",
        relays: [
          { id: "relay-a", url: tunnelUrl(a.relay) },
          { id: "relay-b", url: tunnelUrl(b) },
        ],
      });
      assert.deepEqual(
        older.frames.filter((f) => f.type === "relays"),
        [],
        "the older agent was sent none",
      );
      assert.equal(older.ws.readyState, WebSocket.OPEN, "and its tunnel is up");
    } finally {
      older.ws.terminate();
      newer.ws.terminate();
    }
  });

  it("an agent that does not follow the set keeps to its URLs", async () => {
    url = await cluster.createDatabase("relay_set_fixed");
    a = await startStack({ agent: false, relay: { databaseUrl: url, membership: FAST, relayId: "relay-a" } });
    const b = await relay("relay-b");
    await waitFor(() => a.relay.membership.advertised().length === 2, { what: "A to see B" });
    const agent = startAgent({
      relayUrl: tunnelUrl(a.relay),
      token: a.agentToken,
      policy: allowAll(),
      logger: testLogger("agent"),
      backoff: { baseMs: 50, maxMs: 500 },
      followRelays: false,
    });
    try {
      await agent.waitUp(1, 15_000);
      // a few heartbeats of B: the agent still holds one pool
      const seen = b.membership.relays().find((r) => r.id === "relay-b")?.heartbeatAt;
      await waitFor(() => b.membership.relays().find((r) => r.id === "relay-b")?.heartbeatAt !== seen, {
        what: "another heartbeat",
      });
      assert.deepEqual(agent.relays(), [tunnelUrl(a.relay)]);
      assert.equal(b.registry.statusOf(a.agentId).connected, false);
    } finally {
      await agent.close();
    }
  });
});
