/**
 * Operating a real relay and agent through the admin API: rotation stops the old secret at
 * once and closes what it opened; last-seen times and addresses are kept; the live event
 * stream shows agents, connections, denials, changes and traffic; the audit trail holds
 * denials and changes; an export restored into a fresh relay keeps agents and clients working.
 */
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { waitFor } from "../helpers/ports.js";
import { type SseEvent, takeSseEvents } from "../helpers/sse.js";
import { type Json, type Stack, socksConnect, socksReply, startStack } from "../helpers/stack.js";
import { bannerEcho, startTarget, type Target } from "../helpers/targets.js";

/** A live SSE reader on the relay's admin listener. */
async function subscribe(stack: Stack, types?: string) {
  const { port } = stack.relay.adminAddress;
  const res = await fetch(`http://127.0.0.1:${port}/v1/events${types ? `?types=${types}` : ""}`, {
    headers: { authorization: "Bearer test-admin-token-0123456789" },
  });
  assert.equal(res.status, 200);
  const events: SseEvent[] = [];
  const reader = res.body!.getReader();
  let text = "";
  const pump = (async () => {
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) return;
      const taken = takeSseEvents(text + new TextDecoder().decode(value));
      text = taken.rest;
      events.push(...taken.events);
    }
  })();
  return {
    events,
    until: (what: string, match: (e: SseEvent) => boolean) =>
      waitFor(() => events.find(match), { timeoutMs: 20_000, intervalMs: 20, what }),
    async close() {
      await reader.cancel().catch(() => {});
      await pump;
    },
  };
}

function closedHow(s: Socket): Promise<string> {
  return new Promise((resolve) => {
    s.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    s.on("close", () => resolve("closed"));
  });
}

describe("operating a relay through the admin API", () => {
  let stack: Stack;
  let target: Target;
  const sockets: Socket[] = [];
  /** The client's password, once rotated. */
  let clientPassword = "";

  before(async () => {
    target = await startTarget(bannerEcho("220 echo\r\n"));
    stack = await startStack();
    await stack.addMapping({
      virtualHost: "svc.example",
      virtualPort: 2100,
      internalHost: "127.0.0.1",
      internalPort: target.port,
    });
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await stack?.close();
    await target?.close();
  });

  it("keeps when and from where each agent and client was last seen", async () => {
    const s = await socksConnect(stack.socksPort, stack.client, "svc.example", 2100);
    sockets.push(s);
    await stack.relay.usage.flush();
    const clients = (await stack.api("GET", "/v1/clients")).body as Json[];
    const me = clients.find((c) => c.id === stack.client.id);
    assert.equal(me.lastAddress, "127.0.0.1");
    assert.ok(Date.now() - Date.parse(me.lastUsedAt) < 60_000);
    const agents = (await stack.api("GET", "/v1/agents")).body as Json[];
    const agent = agents.find((a) => a.id === stack.agentId);
    assert.match(agent.lastAddress, /^127\.0\.0\.1/);
    assert.ok(agent.lastSeenAt);
    s.destroy();
  });

  it("streams agents, connections with bytes, denials, changes and traffic as they happen", async () => {
    const feed = await subscribe(stack);
    try {
      const s = await socksConnect(stack.socksPort, stack.client, "svc.example", 2100);
      sockets.push(s);
      const opened = await feed.until("connection.opened", (e) => e.type === "connection.opened");
      assert.equal(opened.data.virtualHost, "svc.example");
      assert.equal(opened.data.clientId, stack.client.id);
      s.write(Buffer.alloc(64 * 1024, 1));
      const traffic = await feed.until(
        "a traffic sample with bytes up",
        (e) => e.type === "traffic" && (e.data.locations?.default?.upBps ?? 0) > 0,
      );
      assert.equal(traffic.data.locations.default.connections, 1);
      s.end();
      const closed = await feed.until(
        "connection.closed",
        (e) => e.type === "connection.closed" && e.data.connectionId === opened.data.connectionId,
      );
      assert.equal(closed.data.connectionId, opened.data.connectionId);
      assert.equal(closed.data.bytesUp, 64 * 1024);

      const denied = await socksReply(stack.socksPort, stack.client, "svc.example", 2101);
      denied.socket.destroy();
      assert.equal(denied.reply, 0x02);
      const denial = await feed.until("denial", (e) => e.type === "denial");
      assert.deepEqual([denial.data.host, denial.data.port], ["svc.example", 2101]);
      assert.deepEqual(denial.data.nearest, ["svc.example:2100"]);

      const m = (
        await stack.api("POST", "/v1/mappings", {
          virtualHost: "new.example",
          virtualPort: 21,
          internalHost: "127.0.0.1",
          internalPort: 21,
        })
      ).body;
      const change = await feed.until("config.changed", (e) => e.type === "config.changed");
      assert.equal(change.data.event, "admin.mapping.created");
      assert.equal(change.data.mappingId, m.id);

      const agent = await stack.startAgent();
      await agent.waitUp(1, 20_000);
      const up = await feed.until("agent.up", (e) => e.type === "agent.up");
      assert.equal(up.data.agentId, stack.agentId);
      assert.equal(up.data.hostName, agent.identity.hostName, "which host and process it is");
      assert.equal(up.data.instanceId, agent.identity.instanceId);
      await agent.close();
      await feed.until("agent.down", (e) => e.type === "agent.down");
    } finally {
      await feed.close();
    }
  });

  it("keeps denials and changes in the audit trail, filtered and paged", async () => {
    const denials = (await stack.api("GET", "/v1/audit?event=socks.denied")).body;
    assert.equal(denials.events.length, 1);
    assert.equal(denials.events[0].host, "svc.example");
    assert.equal(denials.events[0].port, 2101);
    assert.equal(denials.events[0].clientId, stack.client.id);
    assert.equal(denials.events[0].remote, "127.0.0.1", "the source address");
    assert.deepEqual(denials.events[0].nearest, ["svc.example:2100"]);
    const created = (await stack.api("GET", "/v1/audit?event=admin.mapping.created")).body.events;
    assert.deepEqual(
      created.map((e: Json) => e.after.virtualHost),
      ["new.example", "svc.example"],
    );
    assert.equal(created[0].actor, "admin-token");
    const agentEvents = (await stack.api("GET", `/v1/audit?agent=${stack.agentId}`)).body.events as Json[];
    assert.ok(agentEvents.some((e) => e.event === "agent.connected"));
    assert.ok(agentEvents.some((e) => e.event === "agent.disconnected"));
  });

  it("rotating a client's password resets its connections and refuses the old password at once", async () => {
    const s = await socksConnect(stack.socksPort, stack.client, "svc.example", 2100);
    sockets.push(s);
    const how = closedHow(s);
    const rotated = await stack.api("POST", `/v1/clients/${stack.client.id}/rotate`);
    assert.equal(rotated.status, 200);
    assert.equal(rotated.body.username, stack.client.username);
    assert.notEqual(rotated.body.password, stack.client.password);
    assert.equal(await how, "ECONNRESET");
    const old = await socksReply(stack.socksPort, stack.client, "svc.example", 2100);
    old.socket.destroy();
    assert.equal(old.reply, "auth-failed");
    const fresh = await socksConnect(
      stack.socksPort,
      { username: stack.client.username, password: rotated.body.password },
      "svc.example",
      2100,
    );
    sockets.push(fresh);
    fresh.destroy();
    clientPassword = rotated.body.password;
  });

  it("rotating an agent's token closes its tunnels with REVOKED and only the new token connects", async () => {
    const agent = await stack.startAgent();
    await agent.waitUp(1, 20_000);
    const rotated = await stack.api("POST", `/v1/agents/${stack.agentId}/rotate`);
    assert.equal(rotated.status, 200);
    assert.match(rotated.body.token, /^upa_/);
    await waitFor(() => (agent.upCount() === 0 ? true : undefined), {
      timeoutMs: 20_000,
      intervalMs: 20,
      what: "the agent's tunnel to close",
    });
    const disconnected = (await stack.api("GET", `/v1/audit?event=agent.disconnected&agent=${stack.agentId}`))
      .body.events[0];
    assert.match(disconnected.reason, /token rotated/);
    // the old token keeps being refused while the agent retries
    await waitFor(
      async () =>
        (await stack.api("GET", "/v1/audit?event=agent.rejected")).body.events.length > 0 ? true : undefined,
      { timeoutMs: 20_000, intervalMs: 50, what: "the old token refused" },
    );
    assert.equal(agent.upCount(), 0);
    await agent.close();
    const fresh = await stack.startAgent({ token: rotated.body.token });
    await fresh.waitUp(1, 20_000);
    await fresh.close();
  });

  it("restores an export into a fresh relay where agents and clients keep their secrets", async () => {
    const exported = (await stack.api("GET", "/v1/export")).body;
    assert.equal(exported.format, "underpass-config");
    assert.ok(!JSON.stringify(exported).includes(clientPassword), "no secret in the export");
    const other = await startStack({ agent: false });
    try {
      const dry = await other.api("POST", "/v1/import?dryRun=true", exported);
      assert.equal(dry.status, 200);
      assert.equal(dry.body.dryRun, true);
      assert.deepEqual(dry.body.mappings.added.sort(), exported.mappings.map((m: Json) => m.id).sort());
      assert.equal(dry.body.agents.removed.length, 1, "the fresh relay's own agent would go");
      assert.equal((await other.api("GET", "/v1/mappings")).body.length, 0, "a dry run changes nothing");
      const done = await other.api("POST", "/v1/import", exported);
      assert.equal(done.status, 200);
      assert.equal(done.body.dryRun, false);
      assert.equal((await other.api("GET", "/v1/mappings")).body.length, exported.mappings.length);
      // the agent's token and the client's password, as hashes, came along
      const rotatedToken = (await stack.api("POST", `/v1/agents/${stack.agentId}/rotate`)).body.token;
      const again = (await stack.api("GET", "/v1/export")).body;
      assert.equal((await other.api("POST", "/v1/import", again)).status, 200);
      const agent = await other.startAgent({ token: rotatedToken });
      await agent.waitUp(1, 20_000);
      const s = await socksConnect(
        other.socksPort,
        { username: stack.client.username, password: clientPassword },
        "svc.example",
        2100,
      );
      sockets.push(s);
      s.destroy();
      await agent.close();
      const broken = {
        ...exported,
        mappings: [exported.mappings[0], { ...exported.mappings[0], id: "mp_twin" }],
      };
      const refused = await other.api("POST", "/v1/import", broken);
      assert.equal(refused.status, 409);
      assert.equal(
        (await other.api("GET", "/v1/mappings")).body.length,
        again.mappings.length,
        "all or nothing",
      );
    } finally {
      await other.close();
    }
  });
});
