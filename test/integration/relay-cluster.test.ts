/**
 * Two relays in this process over one PostgreSQL database (a private cluster), an agent that
 * keeps its tunnel to relay B, and changes made through relay A's admin API: a new mapping
 * serves through B within a second; a rotated agent, a rotated client and a deleted mapping cut
 * what they carried on B; a change made while B was not listening still arrives; and while the
 * database is stopped both relays keep serving what they hold, refuse writes with a coded 503,
 * say so in /healthz, and resync once it is back.
 */
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import pg from "pg";
import { healthAnswer } from "../../cloud/admin/schemas.js";
import { PostgresStore } from "../../cloud/store/postgres-store.js";
import { waitFor } from "../helpers/ports.js";
import { type PostgresCluster, startPostgres } from "../helpers/postgres.js";
import { type Json, type Stack, socksConnect, socksReply, startStack, testLogger } from "../helpers/stack.js";
import { bannerEcho, readAll, startTarget, type Target } from "../helpers/targets.js";

/** How the socket ended: an error code (a reset) or "closed"; "still open" after `timeoutMs`. */
function closedHow(s: Socket, timeoutMs = 3_000): Promise<string> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve("still open"), timeoutMs);
    const done = (how: string): void => {
      clearTimeout(timer);
      resolve(how);
    };
    s.on("error", (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
    s.on("close", () => done("closed"));
  });
}

/** A SOCKS session through `port` that gets the target's greeting and one echo back. */
async function echoThrough(port: number, creds: { username: string; password: string }, host: string) {
  const s = await socksConnect(port, creds, host, 21);
  try {
    assert.equal((await readAll(s, 10)).toString(), "220 echo\r\n");
    s.write("PING\r\n");
    assert.equal((await readAll(s, 6)).toString(), "PING\r\n");
  } finally {
    s.destroy();
  }
}

describe("two relays over one database", () => {
  let cluster: PostgresCluster;
  let target: Target;
  let n = 0;
  let a: Stack;
  let b: Stack;
  const sockets: Socket[] = [];

  before(async () => {
    [cluster, target] = await Promise.all([startPostgres(), startTarget(bannerEcho("220 echo\r\n"))]);
  });
  after(async () => {
    await target?.close();
    await cluster?.close();
  });

  /** Relays A and B over a fresh database; B's store checks and redials quickly when given. */
  async function relays(fast = false): Promise<void> {
    const url = await cluster.createDatabase(`cluster_${++n}`);
    a = await startStack({ agent: false, relay: { databaseUrl: url } });
    const store = fast
      ? new PostgresStore({ url, logger: testLogger("store-b"), checkIntervalMs: 500, reconnectMaxMs: 300 })
      : undefined;
    b = await startStack({ agent: false, relay: store ? { store } : { databaseUrl: url } });
  }

  beforeEach(() => {
    sockets.splice(0);
  });
  afterEach(async () => {
    for (const s of sockets) s.destroy();
    await b?.close();
    await a?.close();
  });

  /** A's agent, tunnelled to B only (not following the relay set, which would add A). */
  async function agentOnB() {
    const agent = await b.startAgent({ token: a.agentToken, follow: false });
    await agent.waitUp(1, 15_000);
    return agent;
  }

  const mapping = (host: string) => ({
    virtualHost: host,
    virtualPort: 21,
    internalHost: "127.0.0.1",
    internalPort: target.port,
  });

  it("a mapping added on A carries traffic through B's SOCKS port within a second", async () => {
    await relays();
    await agentOnB();
    const before = await socksReply(b.socksPort, a.client, "svc.example", 21);
    before.socket.destroy();
    assert.equal(before.reply, 0x02, "no mapping yet");
    const created = await a.addMapping(mapping("svc.example"));
    const t0 = Date.now();
    await waitFor(async () => (await b.relay.store.getMapping(created.id)) !== undefined, {
      timeoutMs: 1_000,
      intervalMs: 5,
      what: "the mapping to reach B",
    });
    assert.ok(Date.now() - t0 < 1_000);
    await echoThrough(b.socksPort, a.client, "svc.example");
    // the trail is the cluster's: B's admin API shows A's change
    const trail = (await b.api("GET", "/v1/audit?event=admin.mapping.created")).body as Json;
    assert.equal(trail.events[0].mappingId, created.id);
  });

  it("rotating on A cuts on B: the agent's tunnel, the client's connections, a deleted mapping's", async () => {
    await relays();
    const agent = await agentOnB();
    const m = await a.addMapping(mapping("svc.example"));
    await waitFor(async () => (await b.relay.store.getMapping(m.id)) !== undefined, { what: "mapping at B" });

    // a deleted mapping: B resets the connection using it
    const viaMapping = await socksConnect(b.socksPort, a.client, "svc.example", 21);
    sockets.push(viaMapping);
    const mappingCut = closedHow(viaMapping);
    assert.equal((await a.api("DELETE", `/v1/mappings/${m.id}`)).status, 204);
    assert.equal(await mappingCut, "ECONNRESET");

    // a rotated client: B resets its live connection and refuses the old password
    const m2 = await a.addMapping(mapping("svc2.example"));
    await waitFor(async () => (await b.relay.store.getMapping(m2.id)) !== undefined, { what: "m2 at B" });
    const viaClient = await socksConnect(b.socksPort, a.client, "svc2.example", 21);
    sockets.push(viaClient);
    const clientCut = closedHow(viaClient);
    assert.equal((await a.api("POST", `/v1/clients/${a.client.id}/rotate`)).status, 200);
    assert.equal(await clientCut, "ECONNRESET");
    const old = await socksReply(b.socksPort, a.client, "svc2.example", 21);
    old.socket.destroy();
    assert.equal(old.reply, "auth-failed");

    // a rotated agent: its tunnel to B closes, and B refuses the old token when it retries
    assert.equal(agent.upCount(), 1);
    const t0 = Date.now();
    assert.equal((await a.api("POST", `/v1/agents/${a.agentId}/rotate`)).status, 200);
    await waitFor(() => agent.upCount() === 0, {
      timeoutMs: 2_000,
      intervalMs: 10,
      what: "the tunnel to B to close",
    });
    assert.ok(Date.now() - t0 < 1_500, `closed after ${Date.now() - t0} ms`);
    const closed = (await b.api("GET", `/v1/audit?event=agent.disconnected&agent=${a.agentId}`)).body as Json;
    assert.match(closed.events[0].reason, /token rotated/);
    assert.equal(b.relay.registry.statusOf(a.agentId).connected, false);
  });

  it("a change made while B's listening connection is cut still reaches it", async () => {
    await relays();
    await agentOnB();
    const store = b.relay.store as PostgresStore;
    const pid = store.listenerPid;
    const db = new pg.Client({ connectionString: cluster.url(`cluster_${n}`) });
    await db.connect();
    try {
      await db.query("select pg_terminate_backend($1)", [pid]);
    } finally {
      await db.end();
    }
    const m = await a.addMapping(mapping("late.example"));
    await waitFor(async () => (await b.relay.store.getMapping(m.id)) !== undefined, {
      timeoutMs: 5_000,
      what: "the change made while B did not listen",
    });
    await echoThrough(b.socksPort, a.client, "late.example");
    assert.notEqual(store.listenerPid, pid);
  });

  it("with the database stopped both serve what they hold and refuse writes; once back they resync", async () => {
    await relays(true);
    const agent = await agentOnB();
    const m = await a.addMapping(mapping("svc.example"));
    await waitFor(async () => (await b.relay.store.getMapping(m.id)) !== undefined, { what: "mapping at B" });
    // the answer as its schema says, the store's state included
    const health = async (s: Stack) => healthAnswer.parse((await s.api("GET", "/healthz")).body).store;
    assert.equal(await health(a), "available");
    assert.equal(await health(b), "available");

    await cluster.stop();
    await waitFor(async () => (await health(a)) === "unavailable" && (await health(b)) === "unavailable", {
      what: "both relays to see the database gone",
    });
    // B's store redials every 300 ms at most: in this while it fails again and again, as it
    // would through a longer outage at the default 5 s cap
    const outageEnds = Date.now() + 3_000;
    let rounds = 0;
    while (Date.now() < outageEnds || rounds < 3) {
      rounds++;
      await echoThrough(b.socksPort, a.client, "svc.example");
      const refused = await a.api("POST", "/v1/mappings", mapping(`refused${rounds}.example`));
      assert.equal(refused.status, 503, JSON.stringify(refused.body));
      assert.equal(refused.body.error, "UP_ERR_STORE_UNAVAILABLE");
      assert.match(refused.body.message, /cannot be reached/);
      const listed = await b.api("GET", "/v1/mappings");
      assert.equal(listed.status, 200, "reads come from the snapshot");
      assert.deepEqual(
        (listed.body as Json[]).map((x) => x.id),
        [m.id],
      );
      assert.equal((await b.api("GET", "/healthz")).body.status, "ok", "alive, serving what it holds");
    }
    assert.equal(agent.upCount(), 1, "the tunnel does not depend on the database");

    await cluster.start();
    await waitFor(async () => (await health(a)) === "available" && (await health(b)) === "available", {
      timeoutMs: 15_000,
      what: "both relays to reach the database again",
    });
    const after = await a.addMapping(mapping("after.example"));
    const t0 = Date.now();
    await waitFor(async () => (await b.relay.store.getMapping(after.id)) !== undefined, {
      timeoutMs: 1_000,
      intervalMs: 5,
      what: "the first change after the outage to reach B",
    });
    assert.ok(Date.now() - t0 < 1_000);
    await echoThrough(b.socksPort, a.client, "after.example");
    assert.deepEqual(
      (await b.relay.store.listMappings()).map((x) => x.id),
      [m.id, after.id],
      "nothing refused during the outage was stored",
    );
  });
});
