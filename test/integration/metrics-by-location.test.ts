/**
 * The relay's metrics by location and by kind, scraped after real traffic through real agents
 * in two locations: requests by reply, bytes each way, the three histograms, refused
 * credentials of each kind, tunnels, agents and round trips per location; a registered
 * location without a connected agent shows 0, and so does one whose agent went away.
 */
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import type { Agent } from "../../agent/agent.js";
import { waitFor } from "../helpers/ports.js";
import { scrape } from "../helpers/prometheus.js";
import { helloOnce } from "../helpers/raw-hello.js";
import { type Credentials, type Stack, socksConnect, socksReply, startStack } from "../helpers/stack.js";
import { readAll, startTarget, type Target } from "../helpers/targets.js";

/** One CONNECT that sends `size` bytes to the echo target and reads them all back. */
async function echoThrough(stack: Stack, creds: Credentials, host: string, size: number): Promise<void> {
  const s = await socksConnect(stack.socksPort, creds, host, 7);
  const back = readAll(s);
  s.end(Buffer.alloc(size, 0x33));
  assert.equal((await back).length, size);
  s.destroy();
}

describe("relay metrics by location and by kind", () => {
  let stack: Stack;
  let echo: Target;
  let east: Agent;
  let eastClient: Credentials;
  const open: Socket[] = [];
  const defaultSizes = [100, 2000, 30_000];
  const eastSizes = [500, 7000];
  const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

  before(async () => {
    echo = await startTarget((s) => s.pipe(s));
    // PINGs every 100 ms, so that each tunnel has a round trip to show within the test
    stack = await startStack({ relay: { timers: { pingIntervalMs: 100, pingTimeoutMs: 5_000 } } });
    await stack.addMapping({
      virtualHost: "echo.corp",
      virtualPort: 7,
      internalHost: "127.0.0.1",
      internalPort: echo.port,
    });
    const eastAgent = await stack.addAgent("site-east", "east");
    east = await stack.startAgent({ token: eastAgent.token });
    await east.waitUp(1, 15_000);
    eastClient = await stack.addClient("flow-east", "east");
    await stack.addMapping({
      virtualHost: "echo.east",
      virtualPort: 7,
      internalHost: "127.0.0.1",
      internalPort: echo.port,
      location: "east",
    });
    await stack.addAgent("site-west", "west"); // registered, never started
  });

  after(async () => {
    for (const s of open) s.destroy();
    await stack?.close();
    await echo?.close();
  });

  it("counts each request, byte, refusal and refused credential where it happened", async () => {
    for (const n of defaultSizes) await echoThrough(stack, stack.client, "echo.corp", n);
    for (const n of eastSizes) await echoThrough(stack, eastClient, "echo.east", n);
    const denied = await socksReply(stack.socksPort, stack.client, "echo.corp", 9);
    open.push(denied.socket);
    assert.equal(denied.reply, 0x02);
    const wrongPassword = { username: stack.client.username, password: "not-the-password" };
    const badAuth = await socksReply(stack.socksPort, wrongPassword, "echo.corp", 7);
    open.push(badAuth.socket);
    assert.equal(badAuth.reply, "auth-failed");
    assert.equal(await helloOnce(stack.relay.tunnelAddress.port, `upa_${"B".repeat(32)}`), 4003);
    const wrongAdmin = await stack.relay.admin.inject({
      method: "GET",
      url: "/metrics",
      headers: { authorization: "Bearer not-the-admin-token-0123456789" },
    });
    assert.equal(wrongAdmin.statusCode, 401);

    const m = await waitFor(
      async () => {
        const x = await scrape(stack);
        const closed = x.value("underpass_connection_duration_seconds_count") === 5;
        const rtts = x.labelValues("underpass_tunnel_rtt_latest_seconds", "location").length === 2;
        return x.value("underpass_connections") === 0 && closed && rtts ? x : null;
      },
      { timeoutMs: 10_000, what: "five connections closed and a round trip on both tunnels" },
    );

    const requests = "underpass_socks_requests_total";
    assert.equal(m.value(requests, { reply: "0", location: "default" }), defaultSizes.length);
    assert.equal(m.value(requests, { reply: "0", location: "east" }), eastSizes.length);
    assert.equal(m.value(requests, { reply: "2", location: "default" }), 1);
    assert.equal(m.samples(requests).length, 3, "no series but those traffic made");
    assert.equal(m.value("underpass_socks_replies_total", { reply: "0" }), 5, "the old counter still counts");

    const bytes = "underpass_location_bytes_total";
    for (const direction of ["up", "down"]) {
      assert.equal(m.value(bytes, { direction, location: "default" }), sum(defaultSizes), direction);
      assert.equal(m.value(bytes, { direction, location: "east" }), sum(eastSizes), direction);
      assert.equal(
        m.value("underpass_bytes_total", { direction }),
        sum(defaultSizes) + sum(eastSizes),
        `the relay's total ${direction}`,
      );
    }

    // six requests were read (five carried, one denied); the wrong password never got that far
    assert.equal(m.value("underpass_socks_handshake_seconds_count"), 6);
    const dials = "underpass_agent_dial_seconds_count";
    assert.equal(m.value(dials, { kind: "connect", outcome: "ok" }), 5);
    assert.equal(m.samples(dials).length, 1, "no failed dial, no BIND");
    assert.equal(m.value("underpass_socks_open_seconds_count"), 5);
    assert.equal(m.value("underpass_connection_duration_seconds_count"), 5);
    for (const h of ["underpass_socks_handshake_seconds", "underpass_connection_duration_seconds"]) {
      assert.ok((m.value(`${h}_sum`) ?? 0) > 0, `${h}_sum`);
      assert.equal(m.value(`${h}_bucket`, { le: "+Inf" }), m.value(`${h}_count`), `${h} +Inf bucket`);
    }

    const failures = "underpass_auth_failures_total";
    assert.equal(m.value(failures, { kind: "socks" }), 1);
    assert.equal(m.value(failures, { kind: "admin" }), 1);
    assert.equal(m.value(failures, { kind: "agent" }), 1);
    assert.equal(m.value("underpass_tunnels_rejected_total"), 1);

    assert.equal(m.value("underpass_tunnels"), 2);
    for (const [location, n] of [
      ["default", 1],
      ["east", 1],
      ["west", 0],
    ] as const) {
      assert.equal(m.value("underpass_location_tunnels", { location }), n, location);
      assert.equal(m.value("underpass_agents_connected", { location }), n, location);
    }
    for (const location of ["default", "east"]) {
      const rtt = m.value("underpass_tunnel_rtt_latest_seconds", { location });
      assert.ok(rtt !== undefined && rtt >= 0 && rtt < 5, `${location}: ${rtt}`);
    }
    assert.equal(m.value("underpass_tunnel_rtt_latest_seconds", { location: "west" }), undefined);
    assert.equal(m.value("underpass_ftp_passive_rewrites_total", { reply: "227" }), 0);
    assert.equal(m.value("underpass_ftp_active_dials_total", { outcome: "connected" }), 0);
    assert.equal(m.value("underpass_ftp_bounces_refused_total"), 0);

    const types: Record<string, string> = {
      underpass_socks_requests_total: "counter",
      underpass_location_bytes_total: "counter",
      underpass_auth_failures_total: "counter",
      underpass_ftp_passive_rewrites_total: "counter",
      underpass_ftp_active_dials_total: "counter",
      underpass_ftp_bounces_refused_total: "counter",
      underpass_location_tunnels: "gauge",
      underpass_agents_connected: "gauge",
      underpass_tunnel_rtt_latest_seconds: "gauge",
      underpass_socks_handshake_seconds: "histogram",
      underpass_agent_dial_seconds: "histogram",
      underpass_connection_duration_seconds: "histogram",
    };
    for (const [name, type] of Object.entries(types)) {
      const family = m.families.get(name);
      assert.equal(family?.type, type, name);
      assert.ok(family.help.length > 10, `${name} has a HELP text`);
    }
  });

  it("shows 0 agents for a location whose agent went away, and no round trip for it", async () => {
    await east.close();
    const m = await waitFor(
      async () => {
        const x = await scrape(stack);
        return x.value("underpass_agents_connected", { location: "east" }) === 0 ? x : null;
      },
      { timeoutMs: 10_000, what: "the east agent gone from the metrics" },
    );
    assert.equal(m.value("underpass_location_tunnels", { location: "east" }), 0);
    assert.equal(m.value("underpass_agents_connected", { location: "default" }), 1);
    assert.equal(m.value("underpass_tunnel_rtt_latest_seconds", { location: "east" }), undefined);
    assert.equal(m.value("underpass_tunnels"), 1);
  });
});
