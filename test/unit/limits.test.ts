/** The pure parts of the relay's bounds: counters, the failure backoff, rate-limited lines, source keys. */
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { describe, it } from "node:test";
import { BufferBudget, BufferReservation } from "../../cloud/limits/buffer-budget.js";
import { FailureBackoff } from "../../cloud/limits/failure-backoff.js";
import { KeyedCounter } from "../../cloud/limits/keyed-counter.js";
import type { LimitHits } from "../../cloud/limits/limit-hits.js";
import { OVERFLOW_KEY, RateLimited } from "../../cloud/limits/rate-limited.js";
import { sourceKey } from "../../cloud/limits/source-key.js";
import { LimitExceededError } from "../../shared/errors.js";
import type { MuxStream } from "../../shared/tunnel/mux-stream.js";
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
  const hits = { hit: () => {} } as unknown as LimitHits;

  /** A stream and socket stand-in: what the agent sent, what the socket still holds, the credit returned. */
  function spliced(r: BufferReservation): {
    stream: { bytesIn: number; consumed(n: number): void };
    socket: { writableLength: number };
    credit: number[];
  } {
    const credit: number[] = [];
    const stream = { bytesIn: 0, consumed: (n: number) => void credit.push(n) };
    const socket = { writableLength: 0 };
    r.attach(stream as unknown as MuxStream, socket as unknown as Socket);
    return { stream, socket, credit };
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

  it("returns credit only up to half a window once the budget is half used, and in full again after", () => {
    const b = new BufferBudget({ totalBytes: 64 * MiB, perClientBytes: 8 * MiB, windowBytes: 4 * MiB, hits });
    const reader = b.reserve("c") as BufferReservation;
    const idle = b.reserve("c") as BufferReservation; // a stream that never reads: 4 MiB exposed
    const r = spliced(reader);
    // the agent sent the whole window and the client took it all
    r.stream.bytesIn = 4 * MiB;
    r.stream.consumed(4 * MiB);
    assert.deepEqual(r.credit, [2 * MiB], "8 MiB of the client's 8 were exposed: half a window back");
    assert.equal(b.held("c"), 6 * MiB);
    assert.ok(b.reserve("c") instanceof LimitExceededError, "no room for a third window yet");
    idle.release();
    r.stream.bytesIn += 2 * MiB;
    r.stream.consumed(2 * MiB);
    assert.deepEqual(r.credit, [2 * MiB, 4 * MiB], "room again: the withheld credit and this batch");
    reader.release();
    assert.equal(b.held(), 0);
  });

  it("holds back credit while the client's socket still holds bytes", () => {
    const b = new BufferBudget({
      totalBytes: 64 * MiB,
      perClientBytes: 64 * MiB,
      windowBytes: 4 * MiB,
      hits,
    });
    const r = spliced(b.reserve("c") as BufferReservation);
    r.stream.bytesIn = 4 * MiB;
    r.socket.writableLength = 4 * MiB; // the client read nothing: all of it waits in the buffer
    r.stream.consumed(1024);
    assert.deepEqual(r.credit, [], "no credit while the window is held");
    r.socket.writableLength = 0;
    r.stream.consumed(4 * MiB - 1024);
    assert.deepEqual(r.credit, [4 * MiB]);
  });
});
