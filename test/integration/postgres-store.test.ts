/**
 * The PostgreSQL store as several relays use it, on a private cluster: relays that start at
 * once migrate once, racing relays cannot both win a mapping (or a token), every store learns
 * what another wrote within a second — by NOTIFY, after its listening connection was cut, and
 * when a notification never came — and a URL that asks for TLS fails clearly against a server
 * without it.
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import pg from "pg";
import { hashSecret } from "../../cloud/admin/secrets.js";
import type { ConfigChange, ConfigChangeBatch } from "../../cloud/store/changes.js";
import { MIGRATIONS } from "../../cloud/store/migrations.js";
import { MappingConflictError } from "../../cloud/store/overlap.js";
import { PostgresStore, type PostgresStoreOptions } from "../../cloud/store/postgres-store.js";
import { ConflictError, StoreUnavailableError } from "../../shared/errors.js";
import { silentLogger } from "../../shared/logger.js";
import { waitFor } from "../helpers/ports.js";
import { type PostgresCluster, startPostgres } from "../helpers/postgres.js";
import { agentRecord, clientRecord, mappingRecord } from "../unit/store-conformance.js";

describe("PostgreSQL store, several relays over one database", () => {
  let cluster: PostgresCluster;
  let n = 0;
  const stores: PostgresStore[] = [];

  before(async () => {
    cluster = await startPostgres();
  });
  after(async () => {
    await cluster?.close();
  });
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
  });

  const database = (): Promise<string> => cluster.createDatabase(`relays_${++n}`);

  function store(url: string, o: Partial<PostgresStoreOptions> = {}): PostgresStore {
    const s = new PostgresStore({ url, logger: silentLogger(), ...o });
    stores.push(s);
    return s;
  }

  async function opened(url: string, o: Partial<PostgresStoreOptions> = {}): Promise<PostgresStore> {
    const s = store(url, o);
    await s.open();
    return s;
  }

  async function sql<R extends pg.QueryResultRow>(url: string, text: string, values: unknown[] = []) {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      return (await c.query<R>(text, values)).rows;
    } finally {
      await c.end();
    }
  }

  /** Every change batch a store reports, and a wait for one that satisfies `match`. */
  function changesOf(s: PostgresStore) {
    const seen: Array<{ at: number; change: ConfigChange }> = [];
    s.onChange((b: ConfigChangeBatch) => {
      for (const change of b.changes) seen.push({ at: Date.now(), change });
    });
    return {
      seen,
      wait: (match: (c: ConfigChange) => boolean, timeoutMs = 2_000, what = "a change") =>
        waitFor(() => seen.find((x) => match(x.change)), { timeoutMs, intervalMs: 10, what }),
    };
  }

  it("relays starting at the same moment on an empty database migrate it once", async () => {
    const url = await database();
    const four = Array.from({ length: 4 }, () => store(url));
    await Promise.all(four.map((s) => s.open()));
    const rows = await sql<{ version: number; count: string }>(
      url,
      "select version, count(*) over () as count from underpass_migrations order by version",
    );
    assert.deepEqual(
      rows.map((r) => r.version),
      MIGRATIONS.map((m) => m.version),
    );
    // all four work on the one schema
    await four[0]!.addMapping(mappingRecord("mp_1"));
    await waitFor(async () => (await four[3]!.getMapping("mp_1")) !== undefined, { what: "mp_1 on the 4th" });
  });

  it("of two relays adding overlapping mappings at the same moment exactly one wins, every round", async () => {
    const url = await database();
    const [a, b] = await Promise.all([opened(url), opened(url)]);
    for (let round = 0; round < 40; round++) {
      const port = 10_000 + round * 10;
      const wantA = mappingRecord(`mp_${round}_a`, [port, port + 5]);
      const wantB = mappingRecord(`mp_${round}_b`, [port + 5, port + 9], { virtualHost: "FTP.example" });
      const [ra, rb] = await Promise.allSettled([a!.addMapping(wantA), b!.addMapping(wantB)]);
      const won = [ra, rb].filter((r) => r.status === "fulfilled");
      assert.equal(won.length, 1, `round ${round}: exactly one wins`);
      const lost = [ra, rb].find((r) => r.status === "rejected");
      assert.ok(
        lost?.status === "rejected" && lost.reason instanceof MappingConflictError,
        String(lost?.status === "rejected" && lost.reason),
      );
      const winner = ra!.status === "fulfilled" ? wantA.id : wantB.id;
      assert.equal(lost.reason.conflictsWith, winner, `round ${round}: the 409 names the winner`);
    }
    const inDb = await sql<{ count: string }>(url, "select count(*) from mappings");
    assert.equal(Number(inDb[0]?.count), 40);
    await b!.addMapping(mappingRecord("mp_last", [9, 9]));
    await waitFor(async () => (await a!.listMappings()).length === 41, { what: "a to hold all 41" });
    assert.deepEqual(
      (await a!.listMappings()).map((m) => m.id),
      (await b!.listMappings()).map((m) => m.id),
    );
  });

  it("of two relays registering the same token or username at once exactly one wins", async () => {
    const url = await database();
    const [a, b] = await Promise.all([opened(url), opened(url)]);
    for (let round = 0; round < 10; round++) {
      const tokenHash = hashSecret(`token ${round}`);
      const agents = await Promise.allSettled([
        a!.addAgent(agentRecord(`ag_${round}_a`, { tokenHash })),
        b!.addAgent(agentRecord(`ag_${round}_b`, { tokenHash })),
      ]);
      assert.deepEqual(agents.map((r) => r.status).sort(), ["fulfilled", "rejected"]);
      const clients = await Promise.allSettled([
        a!.addClient(clientRecord(`cl_${round}_a`, { username: `u${round}` })),
        b!.addClient(clientRecord(`cl_${round}_b`, { username: `u${round}` })),
      ]);
      const lost = clients.find((r) => r.status === "rejected");
      assert.ok(lost?.status === "rejected" && lost.reason instanceof ConflictError);
      assert.match(String(lost.reason.message), new RegExp(`username u${round} is taken`));
    }
  });

  it("a write on one relay reaches the other within a second, with what changed and how", async () => {
    const url = await database();
    const [a, b] = await Promise.all([opened(url), opened(url)]);
    const onA = changesOf(a!);
    const onB = changesOf(b!);
    const agent = agentRecord("ag_1");
    const t0 = Date.now();
    await a!.addAgent(agent);
    const created = await onB.wait((c) => c.entity === "agent" && c.kind === "created");
    assert.ok(created.at - t0 < 1_000, `seen after ${created.at - t0} ms`);
    assert.equal(created.change.local, false);
    assert.deepEqual(created.change.after, agent);
    assert.deepEqual(await b!.findAgentByTokenHash(agent.tokenHash), agent);
    // the writer hears of its own change too, marked as its own
    const own = onA.seen.find((x) => x.change.entity === "agent" && x.change.kind === "created");
    assert.equal(own?.change.local, true, "the write resolves once the writer's snapshot holds it");

    await a!.replaceAgent({ ...agent, tokenHash: hashSecret("rotated") });
    const rotated = await onB.wait((c) => c.kind === "rotated");
    assert.equal(rotated.change.id, "ag_1");
    assert.equal(await b!.findAgentByTokenHash(agent.tokenHash), undefined, "the old token stops at B");

    await b!.addMapping(mappingRecord("mp_1"));
    await onA.wait((c) => c.entity === "mapping" && c.kind === "created" && !c.local);
    await b!.replaceMapping(mappingRecord("mp_1", [2121, 2121]));
    const { change } = await onA.wait((c) => c.entity === "mapping" && c.kind === "changed");
    assert.ok(change.entity === "mapping");
    assert.deepEqual(change.before?.virtualPort, { start: 21, end: 21 });
    assert.deepEqual(change.after?.virtualPort, { start: 2121, end: 2121 });
    await b!.deleteMapping("mp_1");
    await onA.wait((c) => c.entity === "mapping" && c.kind === "deleted");
    assert.deepEqual(await a!.mappingsOf("default"), []);

    // last-seen notes reach the other relay's lists but are not configuration changes
    const before = onB.seen.length;
    await a!.noteUsage([{ kind: "agent", id: "ag_1", at: "2026-03-01T00:00:00.000Z", address: "192.0.2.4" }]);
    await waitFor(async () => (await b!.getAgent("ag_1"))?.lastAddress === "192.0.2.4", {
      what: "usage at B",
    });
    assert.equal(onB.seen.length, before);
  });

  it("an import on one relay reaches the other whole, however many records it names", async () => {
    const url = await database();
    const [a, b] = await Promise.all([opened(url), opened(url)]);
    await a!.addAgent(agentRecord("ag_old"));
    await a!.addMapping(mappingRecord("mp_old"));
    await waitFor(async () => (await b!.getMapping("mp_old")) !== undefined, { what: "mp_old at B" });
    const onB = changesOf(b!);
    const mappings = Array.from({ length: 1_500 }, (_, i) =>
      mappingRecord(`mp_${i}`, [1 + i * 10, 5 + i * 10]),
    );
    const config = { agents: [agentRecord("ag_new")], clients: [clientRecord("cl_new")], mappings };
    await a!.importConfig(config);
    await waitFor(async () => (await b!.listMappings()).length === 1_500, {
      timeoutMs: 5_000,
      what: "B to hold all",
    });
    assert.deepEqual(await b!.exportConfig(), config);
    await onB.wait((c) => c.id === "mp_1499");
    const kinds = (id: string) => onB.seen.filter((x) => x.change.id === id).map((x) => x.change.kind);
    assert.deepEqual(kinds("ag_old"), ["deleted"]);
    assert.deepEqual(kinds("mp_old"), ["deleted"]);
    assert.deepEqual(kinds("ag_new"), ["created"]);
    assert.equal(
      onB.seen.filter((x) => x.change.entity === "mapping" && x.change.kind === "created").length,
      1_500,
    );
  });

  it("catches up after its listening connection is cut, whatever was notified meanwhile", async () => {
    const url = await database();
    const a = await opened(url);
    // no periodic check to speak of: only the reconnect can bring the change
    const b = await opened(url, { checkIntervalMs: 600_000, reconnectMaxMs: 200 });
    const onB = changesOf(b);
    const pid = b.listenerPid;
    assert.ok(pid !== null);
    const [killed] = await sql<{ ok: boolean }>(url, "select pg_terminate_backend($1) as ok", [pid]);
    assert.equal(killed?.ok, true);
    await a.addMapping(mappingRecord("mp_while_deaf"));
    await onB.wait((c) => c.id === "mp_while_deaf", 5_000, "the change made while B did not listen");
    assert.notEqual(b.listenerPid, pid, "a new listening connection");
    // and it listens again: the next change comes by NOTIFY
    const t0 = Date.now();
    await a.deleteMapping("mp_while_deaf");
    const gone = await onB.wait((c) => c.kind === "deleted");
    assert.ok(gone.at - t0 < 1_000);
  });

  it("a notification that never came is caught by the periodic version check", async () => {
    const url = await database();
    const b = await opened(url, { checkIntervalMs: 300 });
    const onB = changesOf(b);
    // a write as any store makes it, but without its NOTIFY
    await sql(
      url,
      `with v as (update config_version set version = version + 1 returning version),
            m as (insert into mappings (id, virtual_host, virtual_start, virtual_end, internal_host,
                    internal_start, internal_end, location, protocol, description, created_at, updated_at)
                  values ('mp_silent', 'silent.example', 21, 21, '10.0.0.1', 21, 21, 'default', 'tcp', '',
                    '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z'))
       insert into config_changes (version, entity, entity_id, kind, origin)
       select version, 'mapping', 'mp_silent', 'created', 'psql' from v`,
    );
    await onB.wait((c) => c.id === "mp_silent" && c.kind === "created", 3_000, "the silent change");
    assert.equal((await b.getMapping("mp_silent"))?.virtualHost, "silent.example");
  });

  it("writes in flight when the server stops are refused as unavailable, and whatever resolved is kept", async () => {
    const url = await database();
    // rounds run all the time, so that the stop meets connections checked out of the pool
    const a = await opened(url, { reconnectMaxMs: 200, checkIntervalMs: 2 });
    const writes: Array<Promise<string>> = [];
    for (let i = 0; i < 30; i++) {
      writes.push(a.addMapping(mappingRecord(`mp_${i}`, [1000 + i, 1000 + i])).then(() => `mp_${i}`));
      if (i === 10) writes.push(cluster.stop().then(() => "stopped"));
    }
    const settled = await Promise.allSettled(writes);
    const kept = settled.flatMap((r) => (r.status === "fulfilled" && r.value !== "stopped" ? [r.value] : []));
    for (const r of settled) {
      if (r.status === "rejected") assert.ok(r.reason instanceof StoreUnavailableError, String(r.reason));
    }
    assert.ok(
      settled.some((r) => r.status === "rejected"),
      "some writes met the stopped server",
    );
    await assert.rejects(a.addAgent(agentRecord("ag_down")), StoreUnavailableError);
    assert.equal(a.health().state, "unavailable");
    await cluster.start();
    await waitFor(() => a.health().state === "available", { timeoutMs: 15_000, what: "the store back" });
    const inDb = await sql<{ id: string }>(url, "select id from mappings");
    for (const id of kept)
      assert.ok(
        inDb.some((r) => r.id === id),
        `${id} resolved, so it is stored`,
      );
    assert.deepEqual((await a.listMappings()).map((m) => m.id).sort(), inDb.map((r) => r.id).sort());
  });

  it("a URL that asks for TLS fails to open against a server without it, saying so", async () => {
    const url = await database();
    const s = store(`${url}?sslmode=require`);
    await assert.rejects(s.open(), (err: unknown) => {
      assert.ok(err instanceof StoreUnavailableError, String(err));
      assert.match(err.message, /does not support SSL/);
      assert.match(err.message, /TLS require/);
      return true;
    });
  });
});
