/**
 * The tunnel endpoint against a raw WebSocket peer that breaks the hello on purpose, and a real
 * agent: what the peer is told (GOAWAY code and reason) and what the relay publishes.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { after, before, describe, it } from "node:test";
import { WebSocket } from "ws";
import type { EventKey, EventMessages } from "../../cloud/events.js";
import { GOAWAY_CODE } from "../../shared/tunnel/constants.js";
import type { Frame, GoAwayFrame } from "../../shared/tunnel/frame.js";
import { encodeFrame, FrameDecoder } from "../../shared/tunnel/frame-codec.js";
import { waitFor } from "../helpers/ports.js";
import { type Stack, startStack } from "../helpers/stack.js";

/** What a raw peer hears before the relay closes the WebSocket. */
interface Ending {
  readonly goaway: GoAwayFrame;
  readonly closeCode: number;
  readonly afterMs: number;
}

/** Connect, send `first` (or nothing), and collect the GOAWAY and the close. */
async function rawTunnel(stack: Stack, first: Frame | null): Promise<Ending> {
  const ws = new WebSocket(`ws://127.0.0.1:${stack.relay.tunnelAddress.port}/tunnel`, {
    perMessageDeflate: false,
  });
  const frames: Frame[] = [];
  const decoder = new FrameDecoder({ maxFramePayload: 1 << 20, maxControlPayload: 1 << 16 });
  ws.on("message", (data: Buffer) => decoder.push(data, (f) => frames.push(f)));
  await once(ws, "open");
  const t0 = performance.now();
  if (first) ws.send(encodeFrame(first));
  const [closeCode] = (await Promise.race([
    once(ws, "close"),
    new Promise((_, reject) => setTimeout(() => reject(new Error("the relay did not close")), 10_000)),
  ])) as [number];
  const goaway = frames.find((f): f is GoAwayFrame => f.type === "goaway");
  assert.ok(goaway, `a GOAWAY before the close; got ${frames.map((f) => f.type).join(", ")}`);
  return { goaway, closeCode, afterMs: performance.now() - t0 };
}

describe("tunnel gateway: hello, refusals and tunnel events", () => {
  let stack: Stack;
  const heard: { [K in EventKey]?: EventMessages[K][] } = {};
  const unsubscribe: Array<() => void> = [];
  const listen = <K extends EventKey>(key: K): EventMessages[K][] => {
    const list: EventMessages[K][] = [];
    heard[key] = list as (typeof heard)[K];
    unsubscribe.push(stack.relay.events[key].subscribe((m) => list.push(m as EventMessages[K])));
    return list;
  };

  before(async () => {
    stack = await startStack({
      relay: { helloTimeoutMs: 300, timers: { pingIntervalMs: 100, pingTimeoutMs: 5_000 } },
      agent: false,
    });
  });

  after(async () => {
    for (const u of unsubscribe) u();
    await stack?.close();
  });

  it("closes a tunnel that says nothing with HELLO_TIMEOUT, after the deadline, and publishes why", async () => {
    const rejected = listen("tunnelRejected");
    const end = await rawTunnel(stack, null);
    assert.equal(end.goaway.code, GOAWAY_CODE.HELLO_TIMEOUT);
    assert.equal(end.goaway.reason, "no hello received in time");
    assert.equal(end.closeCode, 4000 + GOAWAY_CODE.HELLO_TIMEOUT);
    assert.ok(end.afterMs >= 250, `closed after ${end.afterMs} ms, not before the 300 ms deadline`);
    await waitFor(() => rejected.length === 1, { timeoutMs: 5_000, what: "a tunnel-rejected event" });
    assert.equal(rejected[0]?.code, "UP_ERR_PROTOCOL");
    assert.equal(rejected[0]?.goaway, GOAWAY_CODE.HELLO_TIMEOUT);
  });

  it("refuses a version it does not speak with UNSUPPORTED_VERSION and a reason naming both", async () => {
    const rejected = listen("tunnelRejected");
    const end = await rawTunnel(stack, {
      type: "hello",
      body: { version: 2, token: stack.agentToken, agentVersion: "9.0.0", capabilities: [] },
    });
    assert.equal(end.goaway.code, GOAWAY_CODE.UNSUPPORTED_VERSION);
    assert.equal(end.goaway.reason, "tunnel protocol version 2 is not supported; this relay speaks 1");
    assert.equal(end.closeCode, 4000 + GOAWAY_CODE.UNSUPPORTED_VERSION);
    await waitFor(() => rejected.length === 1, { timeoutMs: 5_000, what: "a tunnel-rejected event" });
    assert.equal(rejected[0]?.code, "UP_ERR_UNSUPPORTED_VERSION");
  });

  it("refuses a well-formed token no agent holds with AUTH_FAILED", async () => {
    const end = await rawTunnel(stack, {
      type: "hello",
      body: { version: 1, token: `upa_${"A".repeat(32)}`, agentVersion: "0.1.0", capabilities: [] },
    });
    assert.equal(end.goaway.code, GOAWAY_CODE.AUTH_FAILED);
    assert.equal(end.goaway.reason, "unknown or revoked agent token");
  });

  it("publishes a real agent's tunnel: connected, round trips, disconnected with the reason", async () => {
    const connected = listen("tunnelConnected");
    const trips = listen("tunnelRoundTrip");
    const disconnected = listen("tunnelDisconnected");
    const extra = await stack.addAgent("site-events");
    const agent = await stack.startAgent({ token: extra.token });
    try {
      await agent.waitUp(1, 15_000);
      await waitFor(() => connected.length === 1, { timeoutMs: 5_000, what: "a tunnel-connected event" });
      const up = connected[0]!;
      assert.equal(up.agentId, extra.id);
      assert.equal(up.location, "default");
      assert.match(up.remote, /^127\.0\.0\.1:\d+$/);
      await waitFor(() => trips.length >= 2, { timeoutMs: 5_000, what: "two round-trip samples" });
      for (const t of trips) {
        assert.equal(t.tunnelId, up.tunnelId);
        assert.ok(t.rttMs >= 0 && t.rttMs < 5_000, `rtt ${t.rttMs} ms`);
      }
      assert.equal((await stack.api("DELETE", `/v1/agents/${extra.id}`)).status, 204);
      await waitFor(() => disconnected.length === 1, {
        timeoutMs: 5_000,
        what: "a tunnel-disconnected event",
      });
      const down = disconnected[0]!;
      assert.equal(down.tunnelId, up.tunnelId);
      assert.equal(down.goaway, GOAWAY_CODE.REVOKED);
      assert.equal(down.byPeer, false);
      assert.ok(down.durationMs >= 0);
    } finally {
      await agent.close();
    }
  });
});
