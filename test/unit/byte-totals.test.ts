/** Byte totals: closed connections plus live ones, per key, never going down between scrapes. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { add, type ByteCount, ByteTotals } from "../../cloud/admin/byte-totals.js";

const live = (entries: Record<string, ByteCount>): Map<string, ByteCount> => new Map(Object.entries(entries));

describe("ByteTotals", () => {
  it("adds what live connections carried so far to what closed ones carried, per key", () => {
    const t = new ByteTotals();
    t.closed("a", 10, 20);
    t.closed("a", 1, 2);
    t.closed("b", 5, 0);
    const shown = t.totals(live({ a: { up: 100, down: 200 }, c: { up: 7, down: 8 } }));
    assert.deepEqual(Object.fromEntries(shown), {
      a: { up: 111, down: 222 },
      b: { up: 5, down: 0 },
      c: { up: 7, down: 8 },
    });
  });

  it("never shows less than before: a connection off the live list before its close is counted", () => {
    const t = new ByteTotals();
    assert.deepEqual(t.totals(live({ a: { up: 50, down: 60 } })).get("a"), { up: 50, down: 60 });
    // gone from the live list, its close not counted yet
    assert.deepEqual(t.totals(live({})).get("a"), { up: 50, down: 60 });
    t.closed("a", 50, 60);
    assert.deepEqual(t.totals(live({})).get("a"), { up: 50, down: 60 });
    t.closed("a", 1, 1);
    assert.deepEqual(t.totals(live({})).get("a"), { up: 51, down: 61 });
  });

  it("add() starts a key at what is added", () => {
    const counts = new Map<string, ByteCount>();
    add(counts, "k", 3, 4);
    add(counts, "k", 1, 1);
    assert.deepEqual(counts.get("k"), { up: 4, down: 5 });
  });
});
