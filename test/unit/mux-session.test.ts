import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConnectionRefusedError, TunnelClosedError } from "../../shared/errors.js";
import {
  DEFAULT_LIMITS,
  GOAWAY_CODE,
  OPEN_KIND,
  RESET_CODE,
  type ResetCode,
} from "../../shared/tunnel/constants.js";
import { encodeDataHeader, encodeFrame } from "../../shared/tunnel/frame-codec.js";
import type { MuxStream, StreamHandlers } from "../../shared/tunnel/mux-stream.js";
import { memoryPair } from "../helpers/memory-pair.js";

/** Collects what a stream receives; consumes at once unless `hold` is set. */
function collector(stream: MuxStream, hold = false, onDrain?: () => void) {
  const got: Buffer[] = [];
  const state = { ended: false, reset: null as Error | null, resetCode: null as ResetCode | null, drains: 0 };
  const handlers: StreamHandlers = {
    onData(chunk) {
      got.push(Buffer.from(chunk));
      if (!hold) stream.consumed(chunk.length);
    },
    onEnd() {
      state.ended = true;
    },
    onReset(err, code) {
      state.reset = err;
      state.resetCode = code;
    },
    onDrain() {
      state.drains++;
      onDrain?.();
    },
  };
  stream.attach(handlers);
  return { got, state, bytes: () => Buffer.concat(got) };
}

/** `promise`, or a rejection naming `what` after `timeoutMs` (whose timer also keeps the process alive). */
function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)),
      timeoutMs,
    );
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function until(pred: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (pred()) return resolve();
      if (Date.now() - start > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setImmediate(tick);
    };
    tick();
  });
}

describe("mux session", () => {
  it("opens a stream, carries data both ways and half-closes each side", async () => {
    const { relay, agent } = memoryPair();
    let agentSide: ReturnType<typeof collector> | null = null;
    let agentStream: MuxStream | null = null;
    agent.onOpen = (stream, open) => {
      assert.equal(open.host, "ftp.corp");
      assert.equal(open.port, 21);
      agentStream = stream;
      agentSide = collector(stream);
      agent.accept(stream, "10.0.0.2", 40000);
      stream.write(Buffer.from("220 hello\r\n"));
    };
    const r = await relay.open(OPEN_KIND.CONNECT, "ftp.corp", 21, 1000);
    assert.equal(r.address, "10.0.0.2");
    const relaySide = collector(r.stream);
    r.stream.write(Buffer.from("USER x\r\n"));
    r.stream.end();
    await until(() => agentSide?.state.ended === true, "agent end");
    assert.equal(agentSide!.bytes().toString(), "USER x\r\n");
    assert.equal(relaySide.state.ended, false, "the other half is still open");
    agentStream!.write(Buffer.from("221 bye\r\n"));
    agentStream!.end();
    await until(() => relaySide.state.ended, "relay end");
    assert.equal(relaySide.bytes().toString(), "220 hello\r\n221 bye\r\n");
    await until(() => relay.streamCount === 0 && agent.streamCount === 0, "streams released");
  });

  it("maps an open failure to the coded error", async () => {
    const { relay, agent } = memoryPair();
    agent.onOpen = (stream) => agent.reject(stream, new ConnectionRefusedError("refused"));
    await assert.rejects(relay.open(OPEN_KIND.CONNECT, "h", 1, 1000), ConnectionRefusedError);
    assert.equal(relay.streamCount, 0);
  });

  it("stalls the sender at zero credit and resumes on a window update", async () => {
    const window = 64 * 1024;
    const limits = { ...DEFAULT_LIMITS, initialWindow: window };
    const { relay, agent, relayTransport } = memoryPair({ relayLimits: limits, agentLimits: limits });
    let agentSide: ReturnType<typeof collector> | null = null;
    let agentStream: MuxStream | null = null;
    agent.onOpen = (stream) => {
      agentStream = stream;
      agentSide = collector(stream, true);
      agent.accept(stream, "", 0);
    };
    const { stream } = await relay.open(OPEN_KIND.CONNECT, "h", 1, 1000);
    const sender = collector(stream);
    const chunk = Buffer.alloc(16 * 1024, 1);
    let accepted = 0;
    while (stream.write(chunk)) accepted++;
    assert.equal(accepted, 3, "three 16 KiB writes fit a 64 KiB window; the fourth exhausts it");
    assert.equal(stream.credit, 0);
    await until(() => agentSide!.bytes().length === window, "window delivered");
    assert.equal(sender.state.drains, 0, "no drain while the receiver holds the data");
    const sent = relayTransport.sent;
    assert.equal(stream.write(chunk), false, "queued: no credit");
    assert.equal(relayTransport.sent, sent, "nothing beyond the window reaches the transport");
    await until(() => relayTransport.bufferedAmount === 0, "bytes in flight delivered");
    assert.equal(agentSide!.bytes().length, window, "the receiver holds exactly its window");
    agentStream!.consumed(window);
    await until(() => sender.state.drains === 1, "drain after the window update");
    await until(() => agentSide!.bytes().length === window + chunk.length, "queued data flushed");
  });

  it("cuts off a peer that sends beyond the window", async () => {
    const limits = { ...DEFAULT_LIMITS, initialWindow: 16 * 1024 };
    const { relay, agent, relayTransport } = memoryPair({ relayLimits: limits, agentLimits: limits });
    agent.onOpen = (stream) => {
      collector(stream, true);
      agent.accept(stream, "", 0);
    };
    const { stream } = await relay.open(OPEN_KIND.CONNECT, "h", 1, 1000);
    const closed = new Promise((resolve) => {
      agent.onClose = resolve;
    });
    // bypass the stream's own credit check: a misbehaving peer
    relayTransport.send(encodeDataHeader(stream.id, 20 * 1024));
    relayTransport.send(Buffer.alloc(20 * 1024));
    const info = (await closed) as { code: number; reason: string };
    assert.equal(info.code, 0x07);
    assert.match(info.reason, /beyond its window/);
  });

  it("keeps a slow stream from stalling a fast one", async () => {
    const limits = { ...DEFAULT_LIMITS, initialWindow: 32 * 1024 };
    const { relay, agent } = memoryPair({ relayLimits: limits, agentLimits: limits });
    const sides: Array<ReturnType<typeof collector>> = [];
    agent.onOpen = (stream) => {
      sides.push(collector(stream, sides.length === 0)); // the first stream never consumes
      agent.accept(stream, "", 0);
    };
    const slow = await relay.open(OPEN_KIND.CONNECT, "slow", 1, 1000);
    const fast = await relay.open(OPEN_KIND.CONNECT, "fast", 1, 1000);
    collector(slow.stream);
    const chunk = Buffer.alloc(8 * 1024, 2);
    while (slow.stream.write(chunk)) {}
    let sent = 0;
    const total = 1024 * 1024;
    const pump = (): void => {
      while (sent < total) {
        sent += chunk.length;
        if (!fast.stream.write(chunk)) return;
      }
    };
    collector(fast.stream, false, pump);
    pump();
    await until(() => sides[1]!.bytes().length === total, "fast stream delivered 1 MiB", 10_000);
    assert.equal(sides[0]!.bytes().length, 32 * 1024, "the slow stream got exactly its window");
  });

  it("resets every stream when the tunnel goes away", async () => {
    const { relay, agent, agentTransport } = memoryPair();
    agent.onOpen = (stream) => {
      collector(stream);
      agent.accept(stream, "", 0);
    };
    const { stream } = await relay.open(OPEN_KIND.CONNECT, "h", 1, 1000);
    const side = collector(stream);
    const pending = new Promise((resolve) => {
      agent.onOpen = () => resolve(undefined); // never answered
    });
    const hanging = relay.open(OPEN_KIND.CONNECT, "h2", 2, 10_000);
    await pending;
    agentTransport.close(1006, "network lost");
    await assert.rejects(hanging, TunnelClosedError);
    await until(() => side.state.reset !== null, "reset");
    assert.ok(side.state.reset instanceof TunnelClosedError);
    assert.equal(side.state.ended, false, "a lost tunnel is never a clean end");
  });

  it("refuses more pending opens than the agent allows", async () => {
    const limits = { ...DEFAULT_LIMITS, maxPendingOpens: 2 };
    const { relay, agent } = memoryPair({ agentLimits: limits });
    agent.onOpen = () => {}; // never answers
    const a = relay.open(OPEN_KIND.CONNECT, "h", 1, 50);
    const b = relay.open(OPEN_KIND.CONNECT, "h", 1, 50);
    await assert.rejects(relay.open(OPEN_KIND.CONNECT, "h", 1, 50), /pending/);
    await Promise.allSettled([a, b]);
  });

  it("detects a silent tunnel within the ping timeout", async () => {
    const timers = { pingIntervalMs: 20, pingTimeoutMs: 60 };
    const { relay, agentTransport } = memoryPair({ timers });
    agentTransport.held = []; // the agent's bytes never arrive
    const start = performance.now();
    const closed = await within(
      new Promise<{ code: number }>((resolve) => {
        relay.onClose = resolve;
      }),
      5_000,
      "the relay to give up on the silent tunnel",
    );
    const after = performance.now() - start;
    assert.equal(closed.code, GOAWAY_CODE.PING_TIMEOUT);
    assert.ok(after >= timers.pingTimeoutMs - 5, `gave up after ${after} ms, before the ping timeout`);
  });

  it("ends a stream the peer resets as a reset, with its code and reason, while the others carry on", async () => {
    const { relay, agent } = memoryPair();
    const agentStreams: MuxStream[] = [];
    const agentSides: Array<ReturnType<typeof collector>> = [];
    agent.onOpen = (stream) => {
      agentStreams.push(stream);
      agentSides.push(collector(stream));
      agent.accept(stream, "", 0);
    };
    const a = await relay.open(OPEN_KIND.CONNECT, "a", 1, 1000);
    const b = await relay.open(OPEN_KIND.CONNECT, "b", 1, 1000);
    const sideA = collector(a.stream);
    const sideB = collector(b.stream);

    // the agent's socket to a's target broke; the relay still writes to a meanwhile
    agentStreams[0]!.reset(RESET_CODE.CONNECTION_RESET, "target reset the connection");
    assert.equal(a.stream.write(Buffer.from("in flight")), true, "the relay does not know yet");
    await until(() => sideA.state.reset !== null, "a's reset");
    assert.ok(sideA.state.reset instanceof TunnelClosedError);
    assert.match(sideA.state.reset.message, /target reset the connection/);
    assert.equal(sideA.state.resetCode, RESET_CODE.CONNECTION_RESET);
    assert.equal(sideA.state.ended, false, "a reset is never a clean end");
    assert.equal(a.stream.phase, "closed");
    assert.equal(a.stream.write(Buffer.from("late")), false, "nothing more goes out on a reset stream");

    // b carries on both ways; the data that crossed the reset was dropped, not a protocol error
    b.stream.write(Buffer.from("ping"));
    await until(() => agentSides[1]!.bytes().toString() === "ping", "b's data at the agent");
    agentStreams[1]!.write(Buffer.from("pong"));
    await until(() => sideB.bytes().toString() === "pong", "b's data at the relay");
    assert.equal(sideB.state.reset, null);
    assert.equal(agentSides[0]!.bytes().length, 0, "the agent never delivered a's late bytes");
    assert.equal(relay.closed || agent.closed, false, "the tunnel is up");
    assert.equal(relay.streamCount, 1);
    assert.equal(agent.streamCount, 1);
  });

  it("cuts off a peer that floods PINGs and reads none of the PONGs, at maxQueuedControlBytes", async () => {
    const maxQueuedControlBytes = 1024;
    const { agent, relayTransport, agentTransport } = memoryPair({ maxQueuedControlBytes });
    agentTransport.held = []; // what the agent sends is never read
    const closed = new Promise<{ code: number; reason: string }>((resolve) => {
      agent.onClose = resolve;
    });
    let sent = 0;
    let peak = 0;
    while (!agent.closed && sent < 10_000) {
      relayTransport.send(encodeFrame({ type: "ping", nonce: sent++ }));
      await new Promise((resolve) => setImmediate(resolve));
      peak = Math.max(peak, agent.queuedControlBytes);
    }
    const info = await within(closed, 5_000, "the agent to cut the flooding peer");
    assert.equal(info.code, GOAWAY_CODE.LIMIT_EXCEEDED);
    assert.match(info.reason, /1024 bytes of control frames/);
    assert.ok(peak <= maxQueuedControlBytes, `held ${peak} bytes of control frames`);
    assert.equal(sent, Math.floor(maxQueuedControlBytes / 13) + 1, "cut at the first PONG past the bound");
    assert.equal(agent.controlOverflows, 1);
  });

  it("answers a peer that reads, however many PINGs it sends", async () => {
    const maxQueuedControlBytes = 16 * 1024;
    const { relay, agent, relayTransport } = memoryPair({ maxQueuedControlBytes });
    let nonce = 0;
    // 20 rounds of 500 PINGs: 130 000 bytes of PONGs in all, 6 500 at most waiting at once
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 500; i++) relayTransport.send(encodeFrame({ type: "ping", nonce: nonce++ }));
      await until(() => relayTransport.bufferedAmount === 0, "the pings delivered");
      await until(() => agent.queuedControlBytes === 0, "the pongs read");
    }
    assert.ok(nonce * 13 > 5 * maxQueuedControlBytes);
    assert.equal(agent.closed || relay.closed, false);
    assert.equal(agent.controlOverflows, 0);
  });
});
