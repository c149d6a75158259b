/**
 * What the relays of a cluster share of FTP, over a private PostgreSQL cluster: the data ports
 * one relay's control connections announced, the BIND listeners and the control connections a
 * BIND on another relay belongs to. Each is seen from a second relay (its own pool and lease):
 * served once, to its owner only, gone with its control connection — and gone once its relay
 * stops renewing its lease, as after a crash. Then, through two real relays, a 229 that
 * reaches the client only once its port is in the database: with the write held back for a
 * while, the client's data CONNECT on the other relay right after the 229 still succeeds.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Agent, startAgent } from "../../agent/agent.js";
import { allowAll } from "../../agent/policy.js";
import { RelayLease } from "../../cloud/cluster/relay-lease.js";
import { SharedBindControls } from "../../cloud/cluster/shared-bind-controls.js";
import { SharedFtpExpectations } from "../../cloud/cluster/shared-ftp-expectations.js";
import { relayEvents, type SocksOpened } from "../../cloud/events.js";
import type { DataExpectation, FtpExpectations } from "../../cloud/ftp/expectations.js";
import { PostgresStore } from "../../cloud/store/postgres-store.js";
import type { MappingRecord } from "../../cloud/store/store.js";
import { readReply } from "../helpers/ftp-dialogue.js";
import { waitFor } from "../helpers/ports.js";
import { type PostgresCluster, startPostgres } from "../helpers/postgres.js";
import { type Stack, socksConnect, socksReply, startStack, testLogger } from "../helpers/stack.js";
import { readAll, startTarget, type Target } from "../helpers/targets.js";

const CONTROL: MappingRecord = {
  id: "mp_control",
  virtualHost: "ftp.corp",
  virtualPort: { start: 21, end: 21 },
  internalHost: "10.0.0.5",
  internalPort: { start: 21, end: 21 },
  location: "default",
  protocol: "ftp",
  description: "",
  createdAt: "2026-01-01T00:00:00.000Z",
  updatedAt: "2026-01-01T00:00:00.000Z",
};
const OWNER = "cl_owner";
/** A short lease, so that a relay that stops renewing is seen dead within a second. */
const LEASE_MS = 600;

/** One relay's view: its store's pool, its lease, its shared expectations and BIND controls. */
interface RelaySide {
  readonly store: PostgresStore;
  readonly lease: RelayLease;
  readonly expectations: SharedFtpExpectations;
  readonly controls: SharedBindControls;
  readonly events: ReturnType<typeof relayEvents>;
}

function expectation(
  port: number,
  controlId = "cn_control",
  hosts = ["ftp.corp", "203.0.113.1"],
): DataExpectation {
  return {
    owner: OWNER,
    controlId,
    port,
    hosts: new Set(hosts),
    mapping: CONTROL,
    internalHost: "10.0.0.5",
    internalPort: port,
    agentId: "ag_1",
    expiresAt: Date.now() + 60_000,
  };
}

/** What a relay publishes when it opens a CONNECT of OWNER to the control mapping. */
function controlOpened(on: RelaySide, connectionId: string, over: Partial<SocksOpened> = {}): SocksOpened {
  return {
    relayId: on.events.relayId,
    connectionId,
    grant: "connect",
    remoteAddress: "198.51.100.7",
    remotePort: 50000,
    clientId: OWNER,
    clientName: "flow",
    location: "default",
    mappingId: CONTROL.id,
    virtualHost: "ftp.corp",
    virtualPort: 21,
    internalHost: "10.0.0.5",
    internalPort: 21,
    agentId: "ag_1",
    tunnelId: "tn_1",
    streamId: 1,
    openMs: 1,
    ...over,
  };
}

describe("FTP state shared across relays", () => {
  let cluster: PostgresCluster;
  let url: string;
  const sides: RelaySide[] = [];

  async function side(name: string): Promise<RelaySide> {
    const store = new PostgresStore({ url, logger: testLogger(`store-${name}`) });
    await store.open();
    const events = relayEvents();
    const logger = testLogger(name);
    const lease = new RelayLease({ pool: store.pool, relayId: events.relayId, logger, leaseMs: LEASE_MS });
    await lease.open();
    const s: RelaySide = {
      store,
      lease,
      events,
      expectations: new SharedFtpExpectations({
        pool: store.pool,
        lease,
        mappingOf: async (id) => (id === CONTROL.id ? CONTROL : undefined),
        logger,
      }),
      controls: new SharedBindControls({ pool: store.pool, lease, events, logger }),
    };
    sides.push(s);
    return s;
  }

  before(async () => {
    cluster = await startPostgres();
    url = await cluster.createDatabase("ftp_shared");
  });
  after(async () => {
    for (const s of sides) {
      s.controls.close();
      await s.lease.close();
      await s.store.close();
    }
    await cluster?.close();
  });

  it("a port announced on A is taken on B once, by its owner, under a host it may name; A does not serve it again", async () => {
    const [a, b] = [await side("a"), await side("b")];
    await a.expectations.add(expectation(31000));
    assert.equal(await b.expectations.take("cl_other", "ftp.corp", 31000, "198.51.100.2"), undefined);
    assert.equal(await b.expectations.take(OWNER, "elsewhere.corp", 31000, "198.51.100.2"), undefined);
    assert.equal(await b.expectations.take(OWNER, "ftp.corp", 31001, "198.51.100.2"), undefined);
    const taken = await b.expectations.take(OWNER, "ftp.corp", 31000, "198.51.100.2");
    assert.ok(taken);
    assert.deepEqual(
      [taken.controlId, taken.internalPort, taken.agentId, taken.mapping.id],
      ["cn_control", 31000, "ag_1", CONTROL.id],
    );
    assert.equal(await b.expectations.take(OWNER, "ftp.corp", 31000, "198.51.100.2"), undefined, "once");
    assert.equal(
      await a.expectations.take(OWNER, "ftp.corp", 31000, "203.0.113.1"),
      undefined,
      "not here either",
    );

    // B's own address as the host (ftplib under proxychains names the proxy it reached)
    await a.expectations.add(expectation(31002));
    assert.ok(await b.expectations.take(OWNER, "198.51.100.2", 31002, "198.51.100.2"));
    // taken on A, where it was announced: B finds nothing
    await a.expectations.add(expectation(31003));
    assert.ok(await a.expectations.take(OWNER, "ftp.corp", 31003, "203.0.113.1"));
    assert.equal(await b.expectations.take(OWNER, "ftp.corp", 31003, "198.51.100.2"), undefined);
  });

  it("what a control connection announced goes when it closes, on every relay", async () => {
    const [a, b] = [await side("a2"), await side("b2")];
    await a.expectations.add(expectation(32000, "cn_closing"));
    await a.expectations.add(expectation(32001, "cn_staying"));
    a.expectations.dropControl(OWNER, "cn_closing");
    await waitFor(
      async () =>
        (await b.store.pool.query("select 1 from ftp_data_expectations where control_id = 'cn_closing'"))
          .rowCount === 0,
      { what: "the closed control connection's rows to go" },
    );
    assert.equal(await b.expectations.take(OWNER, "ftp.corp", 32000, "198.51.100.2"), undefined);
    assert.ok(await b.expectations.take(OWNER, "ftp.corp", 32001, "198.51.100.2"));
  });

  it("a BIND listener noted on A is known on B until forgotten", async () => {
    const [a, b] = [await side("a3"), await side("b3")];
    const forget = await a.expectations.noteBindListen(OWNER, "10.0.0.9", 40001);
    assert.equal(await b.expectations.isBindListen(OWNER, "10.0.0.9", 40001), true);
    assert.equal(await b.expectations.isBindListen("cl_other", "10.0.0.9", 40001), false);
    assert.equal(await b.expectations.isBindListen(OWNER, "10.0.0.9", 40002), false);
    forget();
    await waitFor(async () => !(await b.expectations.isBindListen(OWNER, "10.0.0.9", 40001)), {
      what: "the forgotten listener to go",
    });
  });

  it("a live CONNECT on A is the control connection a BIND on B finds, until it closes", async () => {
    const [a, b] = [await side("a4"), await side("b4")];
    const opened = controlOpened(a, "cn_live", {
      remoteAddress: "::ffff:198.51.100.7",
      virtualHost: "FTP.corp",
    });
    a.events.socksOpened.publish(opened);
    const found = await waitFor(() => b.controls.find(OWNER, "198.51.100.7", "ftp.corp", false), {
      what: "A's connection seen from B",
    });
    assert.deepEqual(
      [found.id, found.mappingId, found.virtualHost, found.internalHost, found.agentId],
      ["cn_live", CONTROL.id, "ftp.corp", "10.0.0.5", "ag_1"],
    );
    assert.equal(await b.controls.find("cl_other", "198.51.100.7", "ftp.corp", false), undefined);
    assert.equal(
      await a.controls.find(OWNER, "198.51.100.7", "ftp.corp", false),
      undefined,
      "A looks only at others",
    );
    // an anonymous client is its address
    a.events.socksOpened.publish({ ...opened, connectionId: "cn_anon", clientId: null, clientName: null });
    const anon = await waitFor(() => b.controls.find(null, "198.51.100.7", "ftp.corp", false));
    assert.equal(anon.id, "cn_anon");
    assert.equal(await b.controls.find(null, "198.51.100.8", "ftp.corp", false), undefined);

    const gone = new Promise<void>((resolve) => b.controls.whenGone(found, resolve));
    a.events.socksClosed.publish({
      relayId: a.events.relayId,
      connectionId: "cn_live",
      grant: "connect",
      location: "default",
      mappingId: CONTROL.id,
      agentId: "ag_1",
      bytesUp: 0,
      bytesDown: 0,
      durationMs: 1,
      error: null,
      clientError: null,
    });
    await gone;
    assert.equal(await b.controls.find(OWNER, "198.51.100.7", "ftp.corp", false), undefined);
  });

  it("a relay that stops renewing its lease (a crash) leaves nothing valid: ports, listeners, control connections", async () => {
    const [a, b] = [await side("a5"), await side("b5")];
    await a.expectations.add(expectation(33000));
    await a.expectations.noteBindListen(OWNER, "10.0.0.9", 40100);
    a.events.socksOpened.publish(controlOpened(a, "cn_crashing"));
    await waitFor(() => b.controls.find(OWNER, "198.51.100.7", "ftp.corp", false), {
      what: "the control at B",
    });
    assert.equal(await b.expectations.isBindListen(OWNER, "10.0.0.9", 40100), true);
    // A's database connections end with no goodbye: nothing is deleted, the lease just runs out
    await a.store.close();
    const t0 = Date.now();
    await waitFor(async () => !(await b.expectations.isBindListen(OWNER, "10.0.0.9", 40100)), {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: "A's listener to stop counting",
    });
    assert.ok(Date.now() - t0 <= LEASE_MS + 2_000, `${Date.now() - t0} ms`);
    assert.equal(await b.expectations.take(OWNER, "ftp.corp", 33000, "198.51.100.2"), undefined);
    assert.equal(await b.controls.find(OWNER, "198.51.100.7", "ftp.corp", false), undefined);
    // and B's next renewal sweeps A's rows
    await waitFor(
      async () =>
        (await b.store.pool.query("select 1 from ftp_bind_listens where port = 40100")).rowCount === 0,
      { what: "A's rows swept" },
    );
  });

  it("a relay whose lease ran out (the database away too long) drops its own rows and publishes its live connections again", async () => {
    const [a, b] = [await side("a6"), await side("b6")];
    a.events.socksOpened.publish(controlOpened(a, "cn_long"));
    await waitFor(() => b.controls.find(OWNER, "198.51.100.7", "ftp.corp", false), {
      what: "the control at B",
    });
    // a listener whose removal failed while the database was away, and the lease run out meanwhile
    await b.store.pool.query(
      "insert into ftp_bind_listens (owner, address, port, relay_id) values ($1, '10.0.0.9', 40200, $2)",
      [OWNER, a.lease.relayId],
    );
    // as another relay's sweep would have done meanwhile
    await b.store.pool.query("delete from ftp_bind_controls where relay_id = $1", [a.lease.relayId]);
    // last, so that A's renewal after it is the one that finds the lapse
    await b.store.pool.query(
      "update ftp_relay_leases set alive_until = now() - interval '1 second' where relay_id = $1",
      [a.lease.relayId],
    );
    // A's next renewal finds the lapse
    await waitFor(async () => !(await b.expectations.isBindListen(OWNER, "10.0.0.9", 40200)), {
      what: "the stale listener gone",
    });
    const again = await waitFor(() => b.controls.find(OWNER, "198.51.100.7", "ftp.corp", false), {
      what: "the live connection published again",
    });
    assert.equal(again.id, "cn_long");
    assert.equal(
      (await b.store.pool.query("select 1 from ftp_bind_listens where port = 40200")).rowCount,
      0,
      "never to count again",
    );
  });
});

describe("a 229 reaches the client only once its port is in the database", () => {
  let cluster: PostgresCluster;
  let ftp: Target;
  let data: Target;
  let a: Stack;
  let b: Stack;
  /** How long relay A's writes of announced ports are held back, in ms. */
  const HOLD_MS = 1_500;

  before(async () => {
    [cluster, data] = await Promise.all([startPostgres(), startTarget((s) => s.end("DATA\r\n"))]);
    // a control channel that announces the data target's port to EPSV
    ftp = await startTarget((s) => {
      s.write("220 ready\r\n");
      s.on("data", (chunk: Buffer) => {
        if (/^EPSV/m.test(chunk.toString()))
          s.write(`229 Entering Extended Passive Mode (|||${data.port}|)\r\n`);
      });
    });
    const url = await cluster.createDatabase("ftp_hold");
    b = await startStack({ agent: false, relay: { databaseUrl: url } });
    // A's expectations as a cluster keeps them, with each write held back for a while
    const pool = new PostgresStore({ url, logger: testLogger("store-hold") });
    await pool.open();
    const events = relayEvents();
    const lease = new RelayLease({ pool: pool.pool, relayId: events.relayId, logger: testLogger("lease") });
    await lease.open();
    const shared = new SharedFtpExpectations({
      pool: pool.pool,
      lease,
      mappingOf: (id) => pool.getMapping(id),
      logger: testLogger("hold"),
    });
    const slow: FtpExpectations = {
      add: (e) => new Promise((resolve) => setTimeout(resolve, HOLD_MS)).then(() => shared.add(e)),
      take: (...args) => shared.take(...args),
      dropControl: (...args) => shared.dropControl(...args),
      noteBindListen: (...args) => shared.noteBindListen(...args),
      isBindListen: (...args) => shared.isBindListen(...args),
    };
    a = await startStack({ agent: false, relay: { databaseUrl: url, ftpExpectations: slow } });
    closeHold = async () => {
      await lease.close();
      await pool.close();
    };
    agent = startAgent({
      relayUrls: [a, b].map((s) => `ws://127.0.0.1:${s.relay.tunnelAddress.port}/tunnel`),
      token: a.agentToken,
      policy: allowAll(),
      logger: testLogger("agent"),
      backoff: { baseMs: 50, maxMs: 500 },
    });
    await agent.waitUp(2, 15_000);
    await a.addMapping({
      virtualHost: "ftp.hold",
      virtualPort: 21,
      internalHost: "127.0.0.1",
      internalPort: ftp.port,
      protocol: "ftp",
    });
    await waitFor(async () => (await b.relay.store.mappingsOf("default")).length === 1, {
      what: "B's mapping",
    });
  });
  let closeHold = async (): Promise<void> => {};
  let agent: Agent | undefined;
  after(async () => {
    await agent?.close();
    await b?.close();
    await a?.close();
    await closeHold();
    await ftp?.close();
    await data?.close();
    await cluster?.close();
  });

  it("the data CONNECT on B, sent the moment the 229 arrives from A, is granted", async () => {
    const control = await socksConnect(a.socksPort, a.client, "ftp.hold", 21);
    try {
      await readReply(control, /^220 /);
      const t0 = Date.now();
      control.write("EPSV\r\n");
      const reply = await readReply(control, /^229 /);
      const held = Date.now() - t0;
      assert.ok(reply.endsWith(`(|||${data.port}|)`), reply);
      assert.ok(held >= HOLD_MS - 50, `the 229 came after ${held} ms`);
      const granted = await socksReply(b.socksPort, a.client, "ftp.hold", data.port);
      try {
        assert.equal(granted.reply, 0x00);
        assert.equal((await readAll(granted.socket, 6)).toString(), "DATA\r\n");
      } finally {
        granted.socket.destroy();
      }
    } finally {
      control.destroy();
    }
  });
});
