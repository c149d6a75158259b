/**
 * One view of the cluster: three real relays over one private PostgreSQL database and a real
 * agent that tunnels to all three. Relay A's admin API lists every relay's connections with its
 * relay id and the agent's tunnels on each relay, kills a connection that lives on C, lists
 * the relays; a relay that does not answer costs at most the peer timeout and is named in the
 * answer instead of failing it; the relays' own routes take the cluster secret only.
 */
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { after, afterEach, before, describe, it } from "node:test";
import pg from "pg";
import { runAdminCommand } from "../../cli/admin/commands.js";
import { connectionAnswer, relayAnswer } from "../../cloud/admin/schemas.js";
import type { Relay } from "../../cloud/relay.js";
import { waitFor } from "../helpers/ports.js";
import { type PostgresCluster, startPostgres } from "../helpers/postgres.js";
import {
  ADMIN_TOKEN,
  FAST_MEMBERSHIP,
  type Json,
  type Stack,
  socksConnect,
  startClusterRelay,
  startStack,
} from "../helpers/stack.js";
import { bannerEcho, readAll, startTarget, type Target } from "../helpers/targets.js";

const FAST = FAST_MEMBERSHIP;

describe("one view of the cluster", () => {
  let cluster: PostgresCluster;
  let target: Target;
  let url: string;
  let a: Stack;
  let b: Relay;
  let c: Relay;
  const sockets: Socket[] = [];

  before(async () => {
    [cluster, target] = await Promise.all([startPostgres(), startTarget(bannerEcho("220 echo\r\n"))]);
    url = await cluster.createDatabase("cluster_view");
    a = await startStack({ agent: false, relay: { databaseUrl: url, membership: FAST, relayId: "relay-a" } });
    b = await relay("relay-b");
    c = await relay("relay-c");
    await a.addMapping({
      virtualHost: "svc.example",
      virtualPort: 21,
      internalHost: "127.0.0.1",
      internalPort: target.port,
    });
    const agent = await a.startAgent();
    await waitFor(() => agent.upCount() === 3, { timeoutMs: 15_000, what: "tunnels to A, B and C" });
  });
  after(async () => {
    await a?.close();
    await Promise.all([b, c].map((r) => r?.close()));
    await target?.close();
    await cluster?.close();
  });
  afterEach(() => {
    for (const s of sockets.splice(0)) s.destroy();
  });

  const relay = (relayId: string): Promise<Relay> => startClusterRelay(url, relayId);

  /** A live SOCKS connection through `socksPort`, past the target's greeting. */
  async function connectThrough(socksPort: number): Promise<Socket> {
    const s = await socksConnect(socksPort, a.client, "svc.example", 21);
    sockets.push(s);
    assert.equal((await readAll(s, 10)).toString(), "220 echo\r\n");
    return s;
  }

  /** A request to a relay's admin port over real HTTP. */
  async function http(r: Relay, method: string, path: string, token?: string) {
    const res = await fetch(`http://127.0.0.1:${r.adminAddress.port}${path}`, {
      method,
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    });
    return { status: res.status, body: (await res.json()) as Json };
  }

  it("lists every relay's connections with its relay id, and kills one wherever it lives", async () => {
    const onC = await connectThrough(c.socksAddress.port);
    await connectThrough(a.socksPort);
    await connectThrough(b.socksAddress.port);
    const res = await a.relay.admin.inject({
      method: "GET",
      url: "/v1/connections",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers["underpass-missing-relays"], undefined);
    const list = (res.json() as Json[]).map((x) => connectionAnswer.parse(x));
    assert.deepEqual(list.map((x) => x.relayId).sort(), ["relay-a", "relay-b", "relay-c"]);
    const cConn = list.find((x) => x.relayId === "relay-c");
    assert.ok(cConn);

    // killed through A, where it does not live: C resets it
    const cut = new Promise<string>((resolve) => {
      onC.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      onC.on("close", () => resolve("closed"));
    });
    assert.equal((await a.api("DELETE", `/v1/connections/${cConn.id}`)).status, 204);
    assert.equal(await cut, "ECONNRESET");
    assert.equal(c.connections.list().length, 0);
    const gone = await a.api("DELETE", `/v1/connections/${cConn.id}`);
    assert.equal(gone.status, 404);
    // the trail says which relay wrote it and where the connection lived
    const trail = (await a.api("GET", "/v1/audit?event=admin.connection.killed")).body as Json;
    assert.equal(trail.events[0].connectionRelayId, "relay-c");
    assert.equal(trail.events[0].relayId, "relay-a");
    assert.equal(trail.events[0].virtualHost, "svc.example");
  });

  it("shows each agent's tunnels on every relay", async () => {
    const agents = (await a.api("GET", "/v1/agents")).body as Json[];
    const mine = agents.find((x) => x.id === a.agentId);
    assert.equal(mine.connected, true);
    assert.equal(mine.tunnels, 3);
    assert.deepEqual(mine.links.map((l: Json) => l.relayId).sort(), ["relay-a", "relay-b", "relay-c"]);
    for (const l of mine.links) {
      assert.match(l.tunnelId, /^tn_/);
      assert.match(l.remoteAddress, /^127\.0\.0\.1:\d+$/);
    }
    // the same view from C
    const fromC = (
      await c.admin.inject({
        method: "GET",
        url: "/v1/agents",
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      })
    ).json() as Json[];
    assert.equal(fromC.find((x) => x.id === a.agentId).links.length, 3);
  });

  it("lists the relays, each live with what it holds", async () => {
    // a heartbeat that a loaded machine delays past the live bound shows as not live for a
    // moment: wait (bounded) for a view in which all three beat, which a dead one never reaches
    const relays = await waitFor(
      async () => {
        const { status, body } = await http(b, "GET", "/v1/relays", ADMIN_TOKEN);
        assert.equal(status, 200);
        const list = (body as Json[]).map((x) => relayAnswer.parse(x));
        return list.length === 3 && list.every((r) => r.live) ? list : undefined;
      },
      { timeoutMs: 10_000, what: "three live relays in GET /v1/relays" },
    );
    assert.deepEqual(relays.map((r) => [r.id, r.live, r.self]).sort(), [
      ["relay-a", true, false],
      ["relay-b", true, true],
      ["relay-c", true, false],
    ]);
    // the metrics say which relay they come from
    const metrics = await fetch(`http://127.0.0.1:${b.adminAddress.port}/metrics`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    assert.match(await metrics.text(), /^underpass_relay_info\{relay_id="relay-b",version="[^"]+"\} 1$/m);
    await waitFor(
      async () =>
        ((await http(b, "GET", "/v1/relays", ADMIN_TOKEN)).body as Json[]).every((r) => r.agents === 1),
      { timeoutMs: 5_000, what: "each relay to count the agent" },
    );
  });

  it("names a relay that does not answer, after the peer timeout, instead of failing", async () => {
    // a relay registered and beating, whose admin port takes connections and never answers
    const silent: Server = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const port = (silent.address() as { port: number }).port;
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    try {
      await db.query(
        `insert into relays (id, tunnel_url, admin_url, addresses, version, started_at, heartbeat_at)
         values ('relay-mute', null, $1, '{}', 'x', now(), now() + interval '1 hour')`,
        [`http://127.0.0.1:${port}`],
      );
      await waitFor(() => a.relay.membership.relays().some((r) => r.id === "relay-mute" && r.live), {
        what: "A to see the mute relay",
      });
      await connectThrough(b.socksAddress.port);
      const t0 = Date.now();
      const res = await a.relay.admin.inject({
        method: "GET",
        url: "/v1/connections",
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      const tookMs = Date.now() - t0;
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers["underpass-missing-relays"], "relay-mute");
      assert.deepEqual(
        (res.json() as Json[]).map((x) => x.relayId),
        ["relay-b"],
        "the relays that answered are listed",
      );
      assert.ok(tookMs < 2_500, `answered after ${tookMs} ms`);

      // the CLI lists what it got and warns of what it did not
      const out: string[] = [];
      const err: string[] = [];
      const code = await runAdminCommand(["connections", "list"], {
        out: (t) => out.push(t),
        err: (t) => err.push(t),
        env: {
          UNDERPASS_ADMIN_URL: `http://127.0.0.1:${a.relay.adminAddress.port}`,
          UNDERPASS_ADMIN_TOKEN: ADMIN_TOKEN,
        },
      });
      assert.equal(code, 0, err.join(""));
      assert.match(out.join(""), /\srelay-b\n/);
      assert.equal(err.join(""), "warning: relays relay-mute did not answer; what they hold is not shown\n");
    } finally {
      await db.query("delete from relays where id = 'relay-mute'");
      await db.end();
      silent.close();
    }
  });

  it("keeps the relays' own routes to the cluster secret", async () => {
    assert.equal((await http(b, "GET", "/v1/cluster/state")).status, 401);
    assert.equal((await http(b, "GET", "/v1/cluster/state", ADMIN_TOKEN)).status, 401);
    assert.equal((await http(b, "GET", "/v1/cluster/state", "upcl_guess")).status, 401);
    const secret = b.membership.secret();
    assert.ok(secret && secret === a.relay.membership.secret(), "one secret for the cluster");
    const state = await http(b, "GET", "/v1/cluster/state", secret);
    assert.equal(state.status, 200);
    assert.equal(state.body.relayId, "relay-b");
    // and the secret opens nothing else
    assert.equal((await http(b, "GET", "/v1/connections", secret)).status, 401);
  });
});
