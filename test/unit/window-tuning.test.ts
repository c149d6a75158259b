/**
 * Receive windows that tune themselves, over in-memory session pairs at a simulated distance (a
 * virtual clock the deliveries move forward: no real waiting, no timed assertion). A window grows
 * under a fast consumer up to its maximum, shrinks for a stalled one, and the tunnel's and the
 * process's budgets are never exceeded however many streams want to grow.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_LIMITS, OPEN_KIND } from "../../shared/tunnel/constants.js";
import type { MuxSession } from "../../shared/tunnel/mux-session.js";
import type { MuxStream, StreamHandlers } from "../../shared/tunnel/mux-stream.js";
import { WindowBudget } from "../../shared/tunnel/window-budget.js";
import { memoryPair, type Pair, type VirtualClock } from "../helpers/memory-pair.js";

const KIB = 1024;
const MIB = 1024 * KIB;
const INITIAL = 64 * KIB;
const LIMITS = { ...DEFAULT_LIMITS, initialWindow: INITIAL, maxFramePayload: 16 * KIB };
/** The sweep runs when a test calls it, never on its own during a test. */
const NO_SWEEP = 600_000;

function until(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
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

/** The receiving end: counts bytes, consumes them at once unless `holding`; tracks the window. */
class Receiver implements StreamHandlers {
  readonly stream: MuxStream;
  bytes = 0;
  holding = false;
  held = 0;
  largestWindow = 0;
  constructor(stream: MuxStream) {
    this.stream = stream;
    stream.attach(this);
  }
  onData(chunk: Buffer): void {
    this.bytes += chunk.length;
    this.largestWindow = Math.max(this.largestWindow, this.stream.receiveWindow);
    if (this.holding) this.held += chunk.length;
    else this.stream.consumed(chunk.length);
  }
  release(): void {
    const n = this.held;
    this.held = 0;
    this.holding = false;
    this.stream.consumed(n);
  }
  onEnd(): void {}
  onReset(): void {}
  onDrain(): void {}
}

/** Writes `total` bytes on `stream`, pausing at each `write() === false` until onDrain. */
function pump(stream: MuxStream, total: number): { sent(): number } {
  const chunk = Buffer.alloc(16 * KIB, 7);
  let sent = 0;
  const go = (): void => {
    while (sent < total) {
      sent += chunk.length;
      if (!stream.write(Buffer.from(chunk))) return;
    }
  };
  stream.attach({ onData() {}, onEnd() {}, onReset() {}, onDrain: go });
  go();
  return { sent: () => sent };
}

/** Opens `count` streams relay → agent; returns the relay's streams and the agent's receivers. */
async function openStreams(pair: Pair, count: number): Promise<{ out: MuxStream[]; into: Receiver[] }> {
  const into: Receiver[] = [];
  pair.agent.onOpen = (stream) => {
    into.push(new Receiver(stream));
    pair.agent.accept(stream, "", 0);
  };
  const out: MuxStream[] = [];
  for (let i = 0; i < count; i++) out.push((await pair.relay.open(OPEN_KIND.CONNECT, "h", 1, 1000)).stream);
  return { out, into };
}

function distantPair(
  clock: VirtualClock,
  rttMs: number,
  tuning: { maxWindow: number; tunnelBudget: number },
  agentWindowBudget = new WindowBudget(1024 * MIB),
): Pair {
  return memoryPair({
    relayLimits: LIMITS,
    agentLimits: LIMITS,
    distance: { clock, rttMs },
    windowTuning: { ...tuning, sweepIntervalMs: NO_SWEEP },
    processWindowBudget: new WindowBudget(1024 * MIB),
    agentWindowBudget,
  });
}

function close(...sessions: MuxSession[]): void {
  for (const s of sessions) s.close(0, "test over");
}

describe("receive windows that tune themselves", () => {
  it("grows under a fast consumer across a 50 ms RTT, and stops at the maximum", async () => {
    const clock = { ms: 0 };
    const max = 1 * MIB;
    const pair = distantPair(clock, 50, { maxWindow: max, tunnelBudget: 8 * MIB });
    const { out, into } = await openStreams(pair, 1);
    const total = 24 * MIB;
    pump(out[0]!, total);
    const rx = into[0]!;
    await until(() => rx.bytes === total, "every byte delivered");
    assert.equal(rx.stream.receiveWindow, max, "the window grew to the maximum");
    assert.equal(rx.largestWindow, max, "and never past it");
    assert.ok(pair.agent.roundTripMs >= 50, `the RTT seen is the distance: ${pair.agent.roundTripMs} ms`);
    // at the initial window 24 MiB would take 24 MiB / 64 KiB = 384 RTTs; grown, far fewer
    const rtts = clock.ms / 50;
    assert.ok(rtts < 60, `${rtts} RTTs to move 24 MiB`);
    close(pair.relay, pair.agent);
  });

  it("does not grow for a consumer slower than the window", async () => {
    const clock = { ms: 0 };
    const pair = distantPair(clock, 50, { maxWindow: 1 * MIB, tunnelBudget: 8 * MIB });
    const { out, into } = await openStreams(pair, 1);
    const rx = into[0]!;
    rx.holding = true;
    const total = 2 * MIB;
    pump(out[0]!, total);
    // the consumer takes one window per 10 RTTs: it, not the window, sets the pace
    while (rx.bytes < total) {
      await until(() => rx.held === INITIAL || rx.bytes === total, "a window's worth");
      clock.ms += 500;
      rx.release();
      rx.holding = true;
    }
    assert.equal(rx.largestWindow, INITIAL, "the window stayed at the initial size");
    assert.equal(
      pair.agent.windows.budget.used,
      INITIAL,
      "the budget holds the initial window, nothing more",
    );
    close(pair.relay, pair.agent);
  });

  it("shrinks the window of a stalled consumer, holding back credit, down to the initial size", async () => {
    const clock = { ms: 0 };
    const max = 1 * MIB;
    const pair = distantPair(clock, 50, { maxWindow: max, tunnelBudget: 8 * MIB });
    const { out, into } = await openStreams(pair, 1);
    const rx = into[0]!;
    const sender = out[0]!;
    pump(sender, 64 * MIB);
    await until(() => rx.stream.receiveWindow === max, "the window at its maximum");
    rx.holding = true;
    const quiet = (): boolean =>
      sender.credit === 0 &&
      pair.relayTransport.bufferedAmount === 0 &&
      pair.agentTransport.bufferedAmount === 0;
    await until(quiet, "the sender stalled");
    assert.ok(rx.held <= max, `held ${rx.held} bytes, at most the window`);
    const budget = pair.agent.windows.budget;
    assert.ok(budget.used > INITIAL, "the grown window is held against the budget");
    // a sweep interval (1 s) passes on the virtual clock before each sweep
    const sweep = (): void => {
      clock.ms += 1000;
      pair.agent.sweepWindows();
    };
    sweep(); // the consumer took bytes in this interval: no change yet
    assert.equal(rx.stream.receiveWindow, max);
    const sizes: number[] = [];
    while (rx.stream.receiveWindow > INITIAL && sizes.length < 20) {
      sweep();
      sizes.push(rx.stream.receiveWindow);
    }
    assert.deepEqual(sizes, [512 * KIB, 256 * KIB, 128 * KIB, 64 * KIB], "halved per sweep");
    assert.ok(budget.used > INITIAL, "what the consumer has not taken stays held against the budget");
    clock.ms += 300;
    rx.release();
    assert.equal(
      budget.used,
      INITIAL,
      "once taken, the growth is back in the budget: the initial window is left",
    );
    await until(() => pair.agentTransport.bufferedAmount === 0, "the window update delivered");
    assert.ok(sender.credit <= INITIAL, `the sender got ${sender.credit} bytes of credit, the shrunk window`);
    close(pair.relay, pair.agent);
  });

  it("never exceeds the tunnel's or the process's budget, however many streams grow", async () => {
    const clock = { ms: 0 };
    // the budgets count the initial windows too (16 per tunnel, on the receiving side): room for
    // 2 MiB of growth per tunnel and 3 MiB over the process
    const initials = 16 * INITIAL;
    const process = new WindowBudget(3 * MIB + 2 * initials);
    const tuning = { maxWindow: 1 * MIB, tunnelBudget: 2 * MIB + initials };
    const pairs = [distantPair(clock, 50, tuning, process), distantPair(clock, 50, tuning, process)];
    const per = 4 * MIB;
    const receivers: Receiver[] = [];
    let worst = 0;
    const check = (): void => {
      for (const p of pairs) {
        const b = p.agent.windows.budget;
        assert.ok(b.used <= b.limit, `tunnel budget ${b.used} > ${b.limit}`);
      }
      assert.ok(process.used <= process.limit, `process budget ${process.used} > ${process.limit}`);
      const growth = receivers.reduce((n, r) => n + (r.stream.receiveWindow - INITIAL), 0);
      worst = Math.max(worst, growth);
      assert.ok(growth <= process.limit - 2 * initials, `windows grew by ${growth} bytes in all`);
    };
    for (const pair of pairs) {
      const { out, into } = await openStreams(pair, 16);
      receivers.push(...into);
      for (const r of into) {
        const onData = r.onData.bind(r);
        r.onData = (chunk) => {
          onData(chunk);
          check();
        };
      }
      for (const s of out) pump(s, per);
    }
    await until(() => receivers.every((r) => r.bytes === per), "every stream delivered", 30_000);
    for (const p of pairs) assert.ok(p.agent.windows.budget.peak <= p.agent.windows.budget.limit);
    assert.ok(process.peak <= process.limit, `process peak ${process.peak}`);
    assert.ok(process.shortfalls > 0, "the budget bit: some growth was refused");
    assert.ok(worst > 2 * MIB, `the windows grew (${worst} bytes at most)`);
    for (const p of pairs) close(p.relay, p.agent);
    await until(() => process.used === 0, "closed streams give everything back");
  });
});
