/**
 * Bounded cardinality, held against real SOCKS traffic: many distinct hosts, ports, usernames,
 * tokens and failure messages move the counters by exactly what was done and add no series;
 * past the cap of distinct locations, further ones count under `location="other"`.
 */
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { MAX_LOCATION_LABELS, OTHER_LOCATION } from "../../cloud/admin/location-labels.js";
import { RelayMetrics } from "../../cloud/admin/metrics.js";
import { waitFor } from "../helpers/ports.js";
import { type Exposition, parseExposition, scrape } from "../helpers/prometheus.js";
import { helloOnce } from "../helpers/raw-hello.js";
import { type Credentials, type Stack, socksReply, startStack } from "../helpers/stack.js";
import { startTarget } from "../helpers/targets.js";

/** SOCKS5 CMD UDP ASSOCIATE (RFC 1928 §4), which the relay answers with 0x07. */
const UDP_ASSOCIATE = 0x03;
/** How many distinct variants of each refusal a round drives. */
const ROUND = 12;

/** The relay's own series: process metrics come and go with the runtime (GC kinds, handle types). */
function underpassSeries(m: Exposition): string[] {
  return [...m.families.values()]
    .filter((f) => f.name.startsWith("underpass_"))
    .flatMap((f) => f.samples.map((s) => `${s.name}${JSON.stringify(s.labels)}`))
    .sort();
}

describe("metrics: bounded cardinality under real traffic", () => {
  let stack: Stack;
  const open: Socket[] = [];
  /** Mappings to ports where nothing listens: the agent's dial is refused, each with its own message. */
  const refusedHosts: string[] = [];

  const reply = async (creds: Credentials, host: string, port: number, command?: number) => {
    const r = await socksReply(stack.socksPort, creds, host, port, command);
    open.push(r.socket);
    return r.reply;
  };

  before(async () => {
    // PINGs every 100 ms: the tunnel's round-trip series exists before anything is compared
    stack = await startStack({
      relay: {
        timers: { pingIntervalMs: 100, pingTimeoutMs: 5_000 },
        // every round's wrong admin token is a 401 here, never the 429 past the bound
        bounds: { adminAuthFailures: 10_000 },
      },
    });
    for (let i = 0; i <= ROUND; i++) {
      const gone = await startTarget(() => {});
      await gone.close();
      const host = `refused-${i}.corp`;
      await stack.addMapping({
        virtualHost: host,
        virtualPort: 7,
        internalHost: "127.0.0.1",
        internalPort: gone.port,
      });
      refusedHosts.push(host);
    }
  });

  after(async () => {
    for (const s of open) s.destroy();
    await stack?.close();
  });

  /** One of each refusal, the `i`th variant: every host, port, username and token is new. */
  async function refusals(i: number): Promise<void> {
    assert.equal(await reply(stack.client, `nowhere-${i}.corp`, 1000 + i), 0x02);
    assert.equal(await reply(stack.client, refusedHosts[i]!, 7), 0x05);
    assert.equal(await reply(stack.client, `udp-${i}.corp`, 2000 + i, UDP_ASSOCIATE), 0x07);
    const stranger = { username: `stranger-${i}`, password: `guess-${i}` };
    assert.equal(await reply(stranger, "echo.corp", 7), "auth-failed");
    const token = `upa_${String(i).padStart(32, "Z")}`;
    assert.equal(await helloOnce(stack.relay.tunnelAddress.port, token), 4003);
    const wrong = await stack.relay.admin.inject({
      method: "GET",
      url: "/v1/agents",
      headers: { authorization: `Bearer wrong-admin-token-${i}-0123456789` },
    });
    assert.equal(wrong.statusCode, 401);
  }

  it("adds no series for new hosts, usernames, tokens or messages; counts each exactly", async () => {
    await waitFor(
      async () =>
        (await scrape(stack)).value("underpass_tunnel_rtt_latest_seconds", { location: "default" }) !==
        undefined,
      { what: "a round trip on the tunnel" },
    );
    await refusals(0); // every kind once: its series exist from here on
    const first = await waitFor(
      async () => {
        const m = await scrape(stack);
        return m.value("underpass_socks_requests_total", { reply: "5", location: "default" }) === 1
          ? m
          : null;
      },
      { what: "the first round counted" },
    );
    for (let i = 1; i <= ROUND; i++) await refusals(i);
    const later = await waitFor(
      async () => {
        const m = await scrape(stack);
        const n = m.value("underpass_socks_requests_total", { reply: "5", location: "default" });
        return n === ROUND + 1 ? m : null;
      },
      { what: "every round counted" },
    );

    assert.deepEqual(underpassSeries(later), underpassSeries(first), "the same series, no new one");
    const requests = "underpass_socks_requests_total";
    for (const code of ["2", "5", "7"]) {
      assert.equal(later.value(requests, { reply: code, location: "default" }), ROUND + 1, `reply ${code}`);
    }
    assert.equal(
      later.value("underpass_agent_dial_seconds_count", { kind: "connect", outcome: "error" }),
      ROUND + 1,
    );
    for (const kind of ["socks", "agent", "admin"]) {
      assert.equal(later.value("underpass_auth_failures_total", { kind }), ROUND + 1, kind);
    }
    const text = [...later.families.values()].flatMap((f) => f.samples.map((s) => JSON.stringify(s.labels)));
    for (const secretish of [
      "nowhere-",
      "stranger-",
      "refused-",
      "udp-",
      "wrong-admin",
      "upa_",
      "127.0.0.1",
    ]) {
      assert.ok(!text.some((t) => t.includes(secretish)), `no label carries ${secretish}`);
    }
  });

  it('past the cap, further locations count under location="other", and the series stay fixed', async () => {
    assert.equal(MAX_LOCATION_LABELS, 1000, "the documented cap");
    const cap = 2;
    const small = new RelayMetrics(
      { agents: stack.relay.registry, connections: stack.relay.connections, events: stack.relay.events },
      { maxLocations: cap, processMetrics: false },
    );
    try {
      const locations = ["loc-1", "loc-2", "loc-3", "loc-4", "loc-5", "loc-6"];
      const clients = [];
      for (const l of locations) clients.push(await stack.addClient(`flow-${l}`, l));
      const requestsIn = async (who: Credentials[]): Promise<void> => {
        for (const c of who) assert.equal(await reply(c, "echo.corp", 7), 0x02, "no mapping there");
      };
      await requestsIn(clients.slice(0, 4));
      // the latest round-trip series appears at the tunnel's next ping: wait for it, so that the
      // comparison below sees only what the requests could add
      await waitFor(
        async () =>
          parseExposition(await small.render()).labelValues("underpass_tunnel_rtt_latest_seconds", "location")
            .length > 0 || undefined,
        { timeoutMs: 30_000, intervalMs: 100, what: "a round trip measured on the tunnel" },
      );
      const before = parseExposition(await small.render());
      const name = "underpass_socks_requests_total";
      assert.deepEqual(before.labelValues(name, "location"), ["loc-1", "loc-2", OTHER_LOCATION]);
      assert.equal(before.value(name, { reply: "2", location: OTHER_LOCATION }), 2);

      await requestsIn([...clients.slice(4), ...clients]);
      const after = parseExposition(await small.render());
      assert.deepEqual(after.labelValues(name, "location"), ["loc-1", "loc-2", OTHER_LOCATION]);
      assert.equal(after.value(name, { reply: "2", location: "loc-1" }), 2);
      assert.equal(after.value(name, { reply: "2", location: OTHER_LOCATION }), 2 + 2 + 4);
      assert.equal(after.sum(name), 4 + 2 + 6, "every request counted once");
      assert.deepEqual(underpassSeries(after), underpassSeries(before), "no series past the cap");

      // the relay's own metrics, with the default cap, name each location
      const full = await scrape(stack);
      for (const l of locations) assert.equal(full.value(name, { reply: "2", location: l }), 2, l);
    } finally {
      small.close();
    }
  });
});
