/**
 * The memory reducer's decision, stepped sample by sample: a full GC only once a burst is over
 * (quiet samples in a row) and only when it left enough behind; never while bytes keep moving.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MemoryReducer } from "../../cli/memory-reducer.js";

const MIB = 1024 * 1024;
const options = { growthBytes: 16 * MIB, quietBytes: MIB, quietSamples: 2 };

/** The samples at which the reducer asks for a GC (collecting brings external back to `floor`). */
function collections(samples: readonly number[], floor = 2 * MIB): number[] {
  const r = new MemoryReducer(samples[0] ?? 0, options);
  const at: number[] = [];
  samples.forEach((s, i) => {
    if (r.sample(s)) {
      at.push(i);
      r.collected(floor);
    }
  });
  return at;
}

describe("memory reducer", () => {
  it("collects once a burst that left 16 MiB or more has been quiet for two samples", () => {
    const burst = [2, 2, 30, 55, 41, 60, 60.5, 60.2, 60.2].map((m) => m * MIB);
    assert.deepEqual(collections(burst), [7]);
  });

  it("never collects while external memory keeps moving, however high", () => {
    const load = Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? 80 : 40) * MIB);
    assert.deepEqual(collections(load), []);
  });

  it("never collects a quiet process that holds less than the growth above its floor", () => {
    const small = [2, 2, 10, 17.9, 17.9, 17.9, 17.9].map((m) => m * MIB);
    assert.deepEqual(collections(small), []);
  });

  it("measures growth from where the last collection left it, not from zero", () => {
    const r = new MemoryReducer(2 * MIB, options);
    for (const m of [2, 40, 40, 40]) r.sample(m * MIB);
    r.collected(30 * MIB); // buffers still in use survive the GC
    assert.equal(r.sample(30 * MIB), false);
    assert.equal(r.sample(30 * MIB), false);
    assert.equal(r.sample(40 * MIB), false, "only 10 MiB above the new floor, and moving");
    assert.equal(r.sample(47 * MIB), false);
    assert.equal(r.sample(47 * MIB), false, "quiet once");
    assert.equal(r.sample(47 * MIB), true, "quiet twice, 17 MiB above the floor");
  });

  it("counts from external memory at start: a burst before the first sample is collected", () => {
    const r = new MemoryReducer(2 * MIB, options);
    assert.equal(r.sample(66 * MIB), false);
    assert.equal(r.sample(66 * MIB), false);
    assert.equal(r.sample(66 * MIB), true);
  });

  it("a lower sample lowers the floor: a burst after V8's own GC is measured from there", () => {
    const samples = [40, 3, 3, 25, 25, 25].map((m) => m * MIB);
    assert.deepEqual(collections(samples), [5]);
  });
});
