/** Failed sign-ins per address: free at first, then a doubling wait up to a cap, cleared by success. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SignInLimiter } from "../../cloud/admin/sign-in-limiter.js";

function clock(start = 1_700_000_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

describe("sign-in limiter", () => {
  it("lets the first failures through, then doubles the wait with each failure up to the cap", () => {
    const c = clock();
    const l = new SignInLimiter({ now: c.now, freeFailures: 2, firstWaitMs: 1000, maxWaitMs: 8000 });
    assert.equal(l.failed("192.0.2.1"), 0);
    assert.equal(l.failed("192.0.2.1"), 0);
    assert.equal(l.waitMs("192.0.2.1"), 0);
    const waits: number[] = [];
    for (let i = 0; i < 6; i++) {
      waits.push(l.failed("192.0.2.1"));
      c.advance(l.waitMs("192.0.2.1"));
    }
    assert.deepEqual(waits, [1000, 2000, 4000, 8000, 8000, 8000]);
  });

  it("closes only the address that failed, for exactly its wait", () => {
    const c = clock();
    const l = new SignInLimiter({ now: c.now, freeFailures: 0, firstWaitMs: 1000 });
    assert.equal(l.failed("192.0.2.1"), 1000);
    assert.equal(l.waitMs("192.0.2.1"), 1000);
    assert.equal(l.waitMs("192.0.2.2"), 0, "another address is not held back");
    c.advance(999);
    assert.equal(l.waitMs("192.0.2.1"), 1);
    c.advance(1);
    assert.equal(l.waitMs("192.0.2.1"), 0, "the right token may be tried once the wait is over");
  });

  it("forgets an address on success, and an hour after its last failure", () => {
    const c = clock();
    const l = new SignInLimiter({ now: c.now, freeFailures: 0 });
    l.failed("192.0.2.1");
    l.succeeded("192.0.2.1");
    assert.equal(l.size, 0);
    assert.equal(l.failed("192.0.2.1"), 1000, "counting starts over");
    c.advance(60 * 60 * 1000);
    assert.equal(l.waitMs("192.0.2.1"), 0);
    assert.equal(l.size, 0);
  });

  it("tracks a bounded number of addresses, dropping the oldest", () => {
    const l = new SignInLimiter({ maxAddresses: 3 });
    for (let i = 1; i <= 5; i++) l.failed(`192.0.2.${i}`);
    assert.equal(l.size, 3);
  });
});
