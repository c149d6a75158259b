/** The pure parts of the relay's bounds: counters, the failure backoff, rate-limited lines, source keys. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BufferBudget, BufferReservation } from "../../cloud/limits/buffer-budget.js";
import { FailureBackoff } from "../../cloud/limits/failure-backoff.js";
import { KeyedCounter } from "../../cloud/limits/keyed-counter.js";
import type { LimitHits } from "../../cloud/limits/limit-hits.js";
import { OVERFLOW_KEY, RateLimited } from "../../cloud/limits/rate-limited.js";
import { sourceKey } from "../../cloud/limits/source-key.js";
import { LimitExceededError } from "../../shared/errors.js";
import { DEFAULT_LIMITS, OPEN_KIND, RESET_CODE } from "../../shared/tunnel/constants.js";
import type { MuxStream } from "../../shared/tunnel/mux-stream.js";
import { WindowBudget } from "../../shared/tunnel/window-budget.js";
import { memoryPair, type Pair } from "../helpers/memory-pair.js";
import { waitFor } from "../helpers/ports.js";

describe("KeyedCounter", () => {
  it("takes up to max per key and forgets a key that holds none", () => {
    const c = new KeyedCounter(2);
    assert.equal(c.tryAcquire("a"), true);
    assert.equal(c.tryAcquire("a"), true);
    assert.equal(c.tryAcquire("a"), false);
    assert.equal(c.tryAcquire("b"), true);
    c.release("a");
    assert.equal(c.tryAcquire("a"), true);
    c.release("a");
    c.release("a");
    c.release("b");
    assert.equal(c.keys, 0);
  });
});

describe("FailureBackoff", () => {
  it("answers the free failures at once, then doubles up to the maximum, by the worst key", () => {
    let now = 0;
    const b = new FailureBackoff({ freeFailures: 2, maxDelayMs: 1000 }, () => now);
    const waits = Array.from({ length: 8 }, () => b.fail(["source:1", "user:x"]));
    assert.deepEqual(waits, [0, 0, 100, 200, 400, 800, 1000, 1000]);
    // another source failing on the same username gets the username's wait
    assert.equal(b.fail(["source:2", "user:x"]), 1000);
    // a key that stops failing is free again as its count decays (half-life 60 s)
    now += 10 * 60_000;
    assert.equal(b.fail(["source:1"]), 0);
  });

  it("keeps at most maxKeys keys, forgetting the oldest", () => {
    const b = new FailureBackoff({ freeFailures: 1, maxDelayMs: 1000, maxKeys: 3 });
    for (const k of ["a", "b", "c", "d"]) b.fail([k]);
    assert.equal(b.keys, 3);
    assert.equal(b.failures("a"), 0);
    assert.ok(b.failures("d") > 0.9);
  });
});

describe("RateLimited", () => {
  it("writes the first of a key, then one summary per period with the count left out", async () => {
    const summaries: Array<[string, number]> = [];
    const r = new RateLimited<string>({ periodMs: 50, maxKeys: 2 }, (key, n) => summaries.push([key, n]));
    let written = 0;
    for (let i = 0; i < 100; i++) r.note("x", () => written++);
    assert.equal(written, 1);
    await waitFor(() => summaries.length > 0, { timeoutMs: 2_000 });
    assert.deepEqual(summaries, [["x", 99]]);
    // keys past maxKeys share the overflow key
    r.note("y", () => written++);
    r.note("z", () => written++);
    r.note("w", () => written++);
    assert.equal(written, 3, "y has its own key; z and w share the overflow key, whose first line is z's");
    r.close();
    assert.deepEqual(
      summaries.find(([k]) => k === OVERFLOW_KEY),
      [OVERFLOW_KEY, 1],
      "close writes what is owed",
    );
  });
});

describe("sourceKey", () => {
  it("counts IPv4 per address, IPv4-mapped as IPv4, IPv6 per /64", () => {
    assert.equal(sourceKey("198.51.100.7"), "198.51.100.7");
    assert.equal(sourceKey("::ffff:198.51.100.7"), "198.51.100.7");
    assert.equal(sourceKey("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
    assert.equal(sourceKey("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64");
    assert.equal(sourceKey(undefined), "");
  });
});

describe("BufferBudget", () => {
  const MiB = 1024 * 1024;
  const KiB = 1024;
  const hits = { hit: () => {} } as unknown as LimitHits;
  const LIMITS = { ...DEFAULT_LIMITS, initialWindow: 4 * MiB, maxFramePayload: 64 * KiB };

  /** A relay session whose windows take from `b`, and an agent that writes what it is told. */
  function relayOf(b: BufferBudget): Pair {
    return memoryPair({
      relayLimits: LIMITS,
      agentLimits: LIMITS,
      processWindowBudget: b.process,
      agentWindowBudget: new WindowBudget(1024 * MiB),
    });
  }

  /** A stream towards the client, spliced under `r`: the agent's end writes, the relay's holds. */
  async function spliced(
    pair: Pair,
    r: BufferReservation,
  ): Promise<{ stream: MuxStream; agentEnd: MuxStream; got: () => number; take(n: number): void }> {
    let agentEnd: MuxStream | null = null;
    pair.agent.onOpen = (s) => {
      agentEnd = s;
      s.attach({ onData() {}, onEnd() {}, onReset() {}, onDrain() {} });
      pair.agent.accept(s, "", 0);
    };
    const { stream } = await pair.relay.open(OPEN_KIND.CONNECT, "h", 1, 1000);
    let got = 0;
    stream.attach({ onData: (c) => void (got += c.length), onEnd() {}, onReset() {}, onDrain() {} });
    r.attach(stream);
    return { stream, agentEnd: agentEnd!, got: () => got, take: (n) => stream.consumed(n) };
  }

  /** The agent writes `n` bytes; resolves once the relay received what the credit let through. */
  async function send(end: MuxStream, pair: Pair, n: number): Promise<void> {
    if (n > 0) end.write(Buffer.alloc(n, 1));
    await waitFor(
      () => pair.agentTransport.bufferedAmount === 0 && pair.relayTransport.bufferedAmount === 0,
      {
        timeoutMs: 5_000,
        what: "the bytes delivered",
      },
    );
  }

  it("reserves a window per stream and refuses one that does not fit; one always fits", () => {
    const b = new BufferBudget({ totalBytes: 12 * MiB, perClientBytes: 8 * MiB, windowBytes: 4 * MiB, hits });
    const one = b.reserve("c1");
    const two = b.reserve("c1");
    assert.ok(one instanceof BufferReservation && two instanceof BufferReservation);
    assert.ok(b.reserve("c1") instanceof LimitExceededError, "the client's third window does not fit");
    const other = b.reserve("c2");
    assert.ok(other instanceof BufferReservation, "another client has its own budget");
    assert.ok(b.reserve("c3") instanceof LimitExceededError, "the relay's 12 MiB are taken");
    one.release();
    assert.equal(b.held("c1"), 4 * MiB);
    const tiny = new BufferBudget({ totalBytes: MiB, perClientBytes: MiB, windowBytes: 4 * MiB, hits });
    assert.ok(tiny.reserve("c") instanceof BufferReservation, "a budget below a window still serves one");
  });

  it("counts an open stream's window in its client's budget and the relay's, and gives it back at the close", async () => {
    const b = new BufferBudget({ totalBytes: 64 * MiB, perClientBytes: 8 * MiB, windowBytes: 4 * MiB, hits });
    const pair = relayOf(b);
    const r = b.reserve("c") as BufferReservation;
    const s = await spliced(pair, r);
    assert.equal(b.held("c"), 4 * MiB, "the window, not the reservation and the window twice");
    assert.equal(b.held(), 4 * MiB);
    s.stream.reset(RESET_CODE.CANCELLED, "over");
    r.release();
    assert.equal(b.held("c"), 0);
    assert.equal(b.held(), 0);
    pair.relay.close(0, "test over");
  });

  it("returns credit only up to half a window once the budget is half used, and in full again after", async () => {
    const b = new BufferBudget({ totalBytes: 64 * MiB, perClientBytes: 8 * MiB, windowBytes: 4 * MiB, hits });
    const pair = relayOf(b);
    const reader = b.reserve("c") as BufferReservation;
    const idle = b.reserve("c") as BufferReservation; // a stream that never reads: 4 MiB exposed
    const r = await spliced(pair, reader);
    // the agent sends the whole window and the client takes it all
    await send(r.agentEnd, pair, 4 * MiB);
    assert.equal(r.got(), 4 * MiB);
    r.take(4 * MiB);
    await waitFor(() => r.agentEnd.credit > 0, { timeoutMs: 5_000, what: "credit back" });
    assert.equal(r.agentEnd.credit, 2 * MiB, "8 MiB of the client's 8 were exposed: half a window back");
    assert.equal(b.held("c"), 6 * MiB);
    assert.ok(b.reserve("c") instanceof LimitExceededError, "no room for a third window yet");
    idle.release();
    await send(r.agentEnd, pair, 2 * MiB);
    r.take(2 * MiB);
    await waitFor(() => r.agentEnd.credit > 0, { timeoutMs: 5_000, what: "credit back" });
    assert.equal(r.agentEnd.credit, 4 * MiB, "room again: a whole window");
    r.stream.reset(RESET_CODE.CANCELLED, "over");
    reader.release();
    assert.equal(b.held(), 0);
    pair.relay.close(0, "test over");
  });

  it("grows a fast stream's window within its client's share, and further with a larger share", async () => {
    const KIB256 = 256 * KiB;
    /** A client that reads at once, of a share of `share` bytes: its stream's largest window. */
    const fast = async (share: number, total: number): Promise<number> => {
      const b = new BufferBudget({ totalBytes: 256 * MiB, perClientBytes: share, windowBytes: KIB256, hits });
      const pair = memoryPair({
        relayLimits: { ...LIMITS, initialWindow: KIB256 },
        agentLimits: { ...LIMITS, initialWindow: KIB256 },
        processWindowBudget: b.process,
        agentWindowBudget: new WindowBudget(1024 * MiB),
        windowTuning: { maxWindow: 4 * MiB, tunnelBudget: 64 * MiB, sweepIntervalMs: 3_600_000 },
      });
      const r = b.reserve("c") as BufferReservation;
      let agentEnd: MuxStream | null = null;
      pair.agent.onOpen = (s) => {
        agentEnd = s;
        pair.agent.accept(s, "", 0);
      };
      const { stream } = await pair.relay.open(OPEN_KIND.CONNECT, "h", 1, 1000);
      let got = 0;
      let largest = 0;
      let mostHeld = 0;
      const done = new Promise<void>((resolve) => {
        stream.attach({
          onData: (c) => {
            got += c.length;
            largest = Math.max(largest, stream.receiveWindow);
            mostHeld = Math.max(mostHeld, b.held("c"));
            stream.consumed(c.length);
            if (got >= total) resolve();
          },
          onEnd() {},
          onReset() {},
          onDrain() {},
        });
      });
      r.attach(stream);
      const chunk = Buffer.alloc(64 * KiB, 3);
      let sent = 0;
      const pump = (): void => {
        while (sent < total) {
          sent += chunk.length;
          if (!agentEnd!.write(Buffer.from(chunk))) return;
        }
      };
      agentEnd!.attach({ onData() {}, onEnd() {}, onReset() {}, onDrain: pump });
      pump();
      await done;
      assert.ok(mostHeld <= share, `the client held ${mostHeld} bytes, beyond its share of ${share}`);
      stream.reset(RESET_CODE.CANCELLED, "over");
      r.release();
      assert.equal(b.held(), 0, "everything given back");
      pair.relay.close(0, "test over");
      return largest;
    };
    const capped = await fast(2 * MiB, 64 * MiB);
    assert.ok(capped > KIB256, `the window grew (${capped} bytes)`);
    assert.ok(capped <= MiB, `and only to half the client's 2 MiB share: ${capped} bytes`);
    assert.equal(await fast(64 * MiB, 64 * MiB), 4 * MiB, "with a 64 MiB share, to the stream's maximum");
  });

  it("holds back credit while the client's socket still holds bytes", async () => {
    const b = new BufferBudget({
      totalBytes: 64 * MiB,
      perClientBytes: 64 * MiB,
      windowBytes: 4 * MiB,
      hits,
    });
    const pair = relayOf(b);
    const reservation = b.reserve("c") as BufferReservation;
    const r = await spliced(pair, reservation);
    await send(r.agentEnd, pair, 4 * MiB); // the client read nothing: all of it waits in the buffer
    r.take(1024);
    await send(r.agentEnd, pair, 0);
    assert.equal(r.agentEnd.credit, 0, "no credit while the window is held");
    assert.equal(b.held("c"), 4 * MiB, "what waits for the client stays counted");
    r.take(4 * MiB - 1024);
    await waitFor(() => r.agentEnd.credit > 0, { timeoutMs: 5_000, what: "credit back" });
    assert.equal(r.agentEnd.credit, 4 * MiB);
    r.stream.reset(RESET_CODE.CANCELLED, "over");
    reservation.release();
    pair.relay.close(0, "test over");
  });
});
