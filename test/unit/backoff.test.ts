import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Backoff, backoffDelay, DEFAULT_BACKOFF } from "../../agent/backoff.js";

/** The largest value Math.random() can return. */
const ALMOST_ONE = 1 - Number.EPSILON;
const low = (): number => 0;
const high = (): number => ALMOST_ONE;

describe("reconnect backoff", () => {
  const o = { baseMs: 250, maxMs: 10_000 };

  it("stays within [cap/2, cap] and never above maxMs, for any attempt", () => {
    for (let attempt = 0; attempt < 200; attempt++) {
      const cap = Math.min(o.maxMs, o.baseMs * 2 ** attempt);
      for (const random of [low, () => 0.5, high, Math.random]) {
        const d = backoffDelay(attempt, o, random);
        assert.ok(d >= cap / 2 && d <= cap, `attempt ${attempt}: ${d} outside [${cap / 2}, ${cap}]`);
        assert.ok(Number.isFinite(d));
      }
    }
    assert.equal(backoffDelay(1e9, o, high), o.maxMs, "a huge attempt count is still the cap");
  });

  it("doubles from baseMs per attempt until it reaches maxMs", () => {
    const caps = Array.from({ length: 8 }, (_, i) => backoffDelay(i, o, high));
    assert.deepEqual(caps, [250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
    const floors = Array.from({ length: 8 }, (_, i) => backoffDelay(i, o, low));
    assert.deepEqual(floors, [125, 250, 500, 1000, 2000, 4000, 5000, 5000]);
  });

  it("spreads delays over the whole jitter range", () => {
    const samples = Array.from({ length: 2000 }, () => backoffDelay(10, o));
    const min = Math.min(...samples);
    const max = Math.max(...samples);
    // 2000 uniform draws over [5000, 10000]: both ends are reached within 2 % of the range
    assert.ok(min <= 5100, `lowest ${min}`);
    assert.ok(max >= 9900, `highest ${max}`);
    assert.ok(new Set(samples).size > 500, "not a handful of fixed values");
  });

  it("keeps a cap below baseMs (a small UNDERPASS_RECONNECT_MAX_MS) as the bound", () => {
    const small = { baseMs: 250, maxMs: 100 };
    for (let attempt = 0; attempt < 5; attempt++) {
      assert.equal(backoffDelay(attempt, small, high), 100);
      assert.equal(backoffDelay(attempt, small, low), 50);
    }
  });

  it("counts attempts, grows with them, and starts over after a reset", () => {
    const b = new Backoff(DEFAULT_BACKOFF, high);
    assert.equal(b.attempt, 0);
    const first = [b.next(), b.next(), b.next(), b.next()];
    assert.deepEqual(first, [250, 500, 1000, 2000]);
    assert.equal(b.attempt, 4);
    b.reset();
    assert.equal(b.attempt, 0);
    assert.equal(b.next(), 250, "after a tunnel was up, the shortest delay again");
    assert.equal(b.next(), 500);
  });
});
