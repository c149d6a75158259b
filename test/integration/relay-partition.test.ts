/**
 * One relay cut from the database, not from its agents: relay B reaches PostgreSQL through a
 * TCP link the test cuts, relay A directly. While cut, B refuses admin writes with a coded 503,
 * says so in /healthz, keeps carrying SOCKS with the configuration it holds and keeps the
 * agent's tunnel (A drops B from its set; B still names itself), while A goes on writing. Once
 * healed, B catches up with every change A made, none lost, beats again, and serves them.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { healthAnswer } from "../../cloud/admin/schemas.js";
import type { Relay } from "../../cloud/relay.js";
import { PostgresStore } from "../../cloud/store/postgres-store.js";
import { waitFor } from "../helpers/ports.js";
import { type PostgresCluster, startPostgres } from "../helpers/postgres.js";
import {
  adminApiOf,
  FAST_MEMBERSHIP,
  type Json,
  type Stack,
  socksConnect,
  startClusterRelay,
  startStack,
  testLogger,
} from "../helpers/stack.js";
import { bannerEcho, readAll, startTarget, type Target } from "../helpers/targets.js";
import { startTcpLink, type TcpLink } from "../helpers/tcp-link.js";

describe("a relay partitioned from the database", () => {
  let cluster: PostgresCluster;
  let target: Target;
  let link: TcpLink;
  let a: Stack;
  let b: Relay;

  before(async () => {
    [cluster, target] = await Promise.all([startPostgres(), startTarget(bannerEcho("220 echo\r\n"))]);
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await link?.close();
    await target?.close();
    await cluster?.close();
  });

  const mapping = (host: string) => ({
    virtualHost: host,
    virtualPort: 21,
    internalHost: "127.0.0.1",
    internalPort: target.port,
  });

  const bApi = (method: string, url: string, body?: unknown) => adminApiOf(b)(method, url, body);

  async function echoThrough(port: number, host: string): Promise<void> {
    const s = await socksConnect(port, a.client, host, 21);
    try {
      assert.equal((await readAll(s, 10)).toString(), "220 echo\r\n");
    } finally {
      s.destroy();
    }
  }

  const storeOf = async (r: { admin: Relay["admin"] }) =>
    healthAnswer.parse(
      (await r.admin.inject({ method: "GET", url: "/healthz" }).then((res) => ({ body: res.json() }))).body,
    ).store;

  it("refuses writes and says so, serves what it holds, keeps its agents, and catches up once healed", async () => {
    const url = await cluster.createDatabase("partition");
    a = await startStack({
      agent: false,
      relay: { databaseUrl: url, membership: FAST_MEMBERSHIP, relayId: "relay-a" },
    });
    link = await startTcpLink({ host: "127.0.0.1", port: cluster.port });
    const throughLink = new URL(url);
    throughLink.port = String(link.port);
    b = await startClusterRelay(url, "relay-b", {
      store: new PostgresStore({
        url: throughLink.toString(),
        logger: testLogger("store-b"),
        checkIntervalMs: 500,
        reconnectMaxMs: 300,
      }),
    });
    const kept = await a.addMapping(mapping("kept.example"));
    const doomed = await a.addMapping(mapping("doomed.example"));
    const agent = await a.startAgent();
    await waitFor(() => agent.upCount() === 2, { timeoutMs: 15_000, what: "tunnels to A and B" });
    await waitFor(async () => (await b.store.getMapping(doomed.id)) !== undefined, {
      what: "B to hold both",
    });

    link.cut();
    await waitFor(async () => (await storeOf(b)) === "unavailable", {
      timeoutMs: 10_000,
      what: "B to see the database gone",
    });
    assert.equal(await storeOf(a.relay), "available", "A still reaches it");
    const healthB = (await b.admin.inject({ method: "GET", url: "/healthz" })).json();
    assert.equal(healthB.status, "ok", "alive, serving what it holds");

    // B refuses writes with the code; A goes on writing
    const refused = await bApi("POST", "/v1/mappings", mapping("refused.example"));
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    assert.equal(refused.body.error, "UP_ERR_STORE_UNAVAILABLE");
    const added = await a.addMapping(mapping("added.example"));
    assert.equal((await a.api("DELETE", `/v1/mappings/${doomed.id}`)).status, 204);
    const patched = await a.api("PATCH", `/v1/mappings/${kept.id}`, {
      description: "changed while B was away",
    });
    assert.equal(patched.status, 200);

    // A stops hearing B's heartbeat; the agent keeps B, which still names itself, and B serves
    await waitFor(() => a.relay.membership.relays().find((r) => r.id === "relay-b")?.live === false, {
      timeoutMs: 10_000,
      what: "A to see B's heartbeat stop",
    });
    await waitFor(() => a.relay.membership.advertised().length === 1, { what: "A to stop advertising B" });
    assert.equal(agent.relays().length, 2, "the agent keeps its tunnel to B");
    assert.equal(b.registry.statusOf(a.agentId).connected, true);
    await echoThrough(b.socksAddress.port, "kept.example");
    // A's merged view still finds B's connections over HTTP
    const viaB = await socksConnect(b.socksAddress.port, a.client, "kept.example", 21);
    try {
      await readAll(viaB, 10);
      const list = (await a.api("GET", "/v1/connections")).body as Json[];
      assert.ok(
        list.some((c) => c.relayId === "relay-b"),
        JSON.stringify(list),
      );
    } finally {
      viaB.destroy();
    }

    // healed: B catches up with all A did, registers again, takes writes
    link.heal();
    await waitFor(async () => (await storeOf(b)) === "available", {
      timeoutMs: 15_000,
      what: "B to reach the database again",
    });
    await waitFor(async () => (await b.store.getMapping(added.id)) !== undefined, {
      timeoutMs: 5_000,
      what: "B to catch up",
    });
    assert.equal(await b.store.getMapping(doomed.id), undefined, "the deletion reached B");
    assert.equal((await b.store.getMapping(kept.id))?.description, "changed while B was away");
    assert.deepEqual(
      (await b.store.listMappings()).map((m) => m.id).sort(),
      [kept.id, added.id].sort(),
      "nothing refused while cut was stored",
    );
    await echoThrough(b.socksAddress.port, "added.example");
    await waitFor(() => a.relay.membership.relays().find((r) => r.id === "relay-b")?.live === true, {
      timeoutMs: 10_000,
      what: "B live again",
    });
    assert.equal((await bApi("POST", "/v1/mappings", mapping("after.example"))).status, 201);
  });
});
