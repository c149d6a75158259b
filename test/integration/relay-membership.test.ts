/**
 * Relay membership over a private PostgreSQL cluster: each relay registers at start, beats
 * every heartbeat with what it holds, deletes its row on a clean stop; a relay whose heartbeat
 * stopped is not live after the bound, and its row is pruned after the longer one; an id given
 * again takes its row back; a relay on a wildcard address registers but is not advertised.
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import pg from "pg";
import type { Relay } from "../../cloud/relay.js";
import { waitFor } from "../helpers/ports.js";
import { type PostgresCluster, startPostgres } from "../helpers/postgres.js";
import { startClusterRelay } from "../helpers/stack.js";

const FAST = { heartbeatMs: 100, liveMs: 600, pruneMs: 3_000 };

describe("relay membership", () => {
  let cluster: PostgresCluster;
  let url: string;
  let n = 0;
  const relays: Relay[] = [];

  before(async () => {
    cluster = await startPostgres();
  });
  after(async () => {
    await cluster?.close();
  });
  afterEach(async () => {
    for (const r of relays.splice(0)) await r.close();
  });

  async function relay(
    o: { relayId?: string; tunnelHost?: string; publicUrl?: string } = {},
  ): Promise<Relay> {
    const r = await startClusterRelay(url, o.relayId ?? "relay-x", {
      membership: FAST,
      ...(o.tunnelHost ? { tunnelHost: o.tunnelHost } : {}),
      ...(o.publicUrl ? { publicUrl: o.publicUrl } : {}),
    });
    relays.push(r);
    return r;
  }

  async function rows(): Promise<Array<{ id: string; heartbeat_at: Date; tunnel_url: string | null }>> {
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    try {
      return (await db.query("select id, heartbeat_at, tunnel_url from relays order by id")).rows;
    } finally {
      await db.end();
    }
  }

  async function sql(text: string, values: unknown[] = []): Promise<void> {
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    try {
      await db.query(text, values);
    } finally {
      await db.end();
    }
  }

  it("registers, beats with what it holds, and deletes its row on a clean stop", async () => {
    url = await cluster.createDatabase(`members_${++n}`);
    const a = await relay({ relayId: "relay-a" });
    const b = await relay({ relayId: "relay-b" });
    const ids = (await rows()).map((r) => r.id);
    assert.deepEqual(ids, ["relay-a", "relay-b"]);
    const urlOf = (r: Relay) => `ws://127.0.0.1:${r.tunnelAddress.port}/tunnel`;
    assert.deepEqual(
      (await rows()).map((r) => r.tunnel_url),
      [urlOf(a), urlOf(b)],
    );

    // both see both within a heartbeat or two, live, with their addresses and version
    await waitFor(() => a.membership.advertised().length === 2 && b.membership.advertised().length === 2, {
      timeoutMs: 5_000,
      what: "each relay to see the other",
    });
    assert.deepEqual(a.membership.advertised(), [
      { id: "relay-a", url: urlOf(a) },
      { id: "relay-b", url: urlOf(b) },
    ]);
    const seenB = a.membership.relays().find((r) => r.id === "relay-b");
    assert.ok(seenB?.live);
    assert.equal(seenB.addresses["socks"], `127.0.0.1:${b.socksAddress.port}`);
    assert.equal(seenB.adminUrl, `http://127.0.0.1:${b.adminAddress.port}`);

    // the heartbeat moves on
    const first = (await rows()).find((r) => r.id === "relay-a")?.heartbeat_at.getTime() ?? 0;
    await waitFor(
      async () => ((await rows()).find((r) => r.id === "relay-a")?.heartbeat_at.getTime() ?? 0) > first,
      {
        timeoutMs: 5_000,
        what: "a second heartbeat",
      },
    );

    // a clean stop deletes the row: A drops B at its next heartbeat, not after the live bound
    await b.close();
    assert.deepEqual(
      (await rows()).map((r) => r.id),
      ["relay-a"],
    );
    await waitFor(() => a.membership.advertised().length === 1, { timeoutMs: 5_000, what: "A to drop B" });
  });

  it("a relay that stops beating is not live after the bound and pruned after the longer one", async () => {
    url = await cluster.createDatabase(`members_${++n}`);
    const a = await relay({ relayId: "relay-a" });
    // a relay that died without a word: its row stays, its heartbeat does not move
    await sql(
      `insert into relays (id, tunnel_url, admin_url, addresses, version, started_at, heartbeat_at)
       values ('relay-dead', 'ws://127.0.0.1:9/tunnel', null, '{}', 'x', now(), now())`,
    );
    await waitFor(() => a.membership.advertised().some((r) => r.id === "relay-dead"), {
      timeoutMs: 5_000,
      what: "the row to be seen live",
    });
    const t0 = Date.now();
    await waitFor(() => !a.membership.advertised().some((r) => r.id === "relay-dead"), {
      timeoutMs: 5_000,
      intervalMs: 20,
      what: "the silent relay to be dropped",
    });
    const droppedMs = Date.now() - t0;
    assert.ok(droppedMs < FAST.liveMs + 3 * FAST.heartbeatMs + 500, `dropped after ${droppedMs} ms`);
    assert.equal(a.membership.relays().find((r) => r.id === "relay-dead")?.live, false, "listed, not live");
    await waitFor(async () => !(await rows()).some((r) => r.id === "relay-dead"), {
      timeoutMs: 10_000,
      what: "the stale row to be pruned",
    });
  });

  it("an id given again takes its row back; a wildcard tunnel address is registered, not advertised", async () => {
    url = await cluster.createDatabase(`members_${++n}`);
    const w = await relay({ relayId: "relay-w", tunnelHost: "0.0.0.0" });
    // relay-a's row from a start that ended without a word
    await sql(
      `insert into relays (id, tunnel_url, admin_url, addresses, version, started_at, heartbeat_at)
       values ('relay-a', 'ws://old:1/tunnel', null, '{}', 'old', now() - interval '1 day', now() - interval '10 s')`,
    );
    const a = await relay({ relayId: "relay-a" });
    const mine = a.membership.relays().find((r) => r.id === "relay-a");
    assert.equal(mine?.tunnelUrl, `ws://127.0.0.1:${a.tunnelAddress.port}/tunnel`);
    assert.notEqual(mine?.version, "old");
    assert.deepEqual(
      (await rows()).map((r) => r.id),
      ["relay-a", "relay-w"],
    );
    await waitFor(() => a.membership.relays().some((r) => r.id === "relay-w"), {
      timeoutMs: 5_000,
      what: "A to see W",
    });
    assert.equal(a.membership.relays().find((r) => r.id === "relay-w")?.tunnelUrl, null);
    await waitFor(() => w.membership.advertised().length > 0, { timeoutMs: 5_000, what: "W to see A" });
    assert.deepEqual(
      w.membership.advertised().map((r) => r.id),
      ["relay-a"],
      "W advertises the others, not itself",
    );
    const p = await relay({
      relayId: "relay-p",
      tunnelHost: "0.0.0.0",
      publicUrl: "wss://relay-p.example/tunnel",
    });
    assert.equal(
      p.membership.relays().find((r) => r.id === "relay-p")?.tunnelUrl,
      "wss://relay-p.example/tunnel",
    );
  });
});
