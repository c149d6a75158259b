/**
 * Access control at scale: a location of 10 000 mappings, and the work a denial costs. The
 * work is counted as reads of the location's array (a Proxy), so the bound holds on a loaded
 * machine where a timing would not.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NEAREST_SCAN, resolveDestination } from "../../cloud/socks/access-control.js";
import type { MappingRecord } from "../../cloud/store/store.js";

function mapping(i: number, host: string, port: number): MappingRecord {
  return {
    id: `mp_${i}`,
    virtualHost: host,
    virtualPort: { start: port, end: port },
    internalHost: "10.0.0.1",
    internalPort: { start: port, end: port },
    location: "default",
    protocol: "tcp",
    description: "",
    createdAt: "",
    updatedAt: "",
  };
}

/** 10 000 mappings over 2 500 hosts, four ports each; and a count of the element reads. */
function location(): { mappings: readonly MappingRecord[]; reads: () => number } {
  const plain = Array.from({ length: 10_000 }, (_, i) => mapping(i, `h${i % 2500}.corp`, 1000 + i));
  let reads = 0;
  const mappings = new Proxy(plain, {
    get(target, key, receiver) {
      if (typeof key === "string" && /^\d+$/.test(key)) reads++;
      return Reflect.get(target, key, receiver);
    },
  });
  return { mappings, reads: () => reads };
}

describe("access control over 10 000 mappings", () => {
  it("grants through the host index and names the same host's nearest mappings first", () => {
    const { mappings } = location();
    const g = resolveDestination(mappings, "H7.corp", 1000 + 2507);
    assert.ok(g.allowed);
    assert.equal(g.mapping.id, "mp_2507");
    const d = resolveDestination(mappings, "h7.corp", 1000 + 2508);
    assert.equal(d.allowed, false);
    assert.deepEqual(
      d.nearest.map((m) => m.id),
      ["mp_2507", "mp_5007", "mp_7"],
      "the same host's mappings, by port distance",
    );
  });

  it("fills a denial of an unknown host from a bounded scan, nearest ports first", () => {
    const { mappings } = location();
    const d = resolveDestination(mappings, "nowhere.corp", 1001);
    assert.equal(d.allowed, false);
    assert.deepEqual(
      d.nearest.map((m) => m.id),
      ["mp_1", "mp_0", "mp_2"],
    );
  });

  it("bounds the work of a denial: no pass over every mapping once the location is indexed", () => {
    const { mappings, reads } = location();
    resolveDestination(mappings, "warm.corp", 1); // builds the index: one pass
    const before = reads();
    const denials = 200;
    for (let k = 0; k < denials; k++) {
      const host = k % 2 === 0 ? `h${k}.corp` : `unknown${k}.corp`;
      assert.equal(resolveDestination(mappings, host, 65000).allowed, false);
    }
    const perDenial = (reads() - before) / denials;
    assert.ok(
      perDenial <= NEAREST_SCAN + 8,
      `a denial read ${perDenial} mappings of 10 000 (bound ${NEAREST_SCAN + 8})`,
    );
  });
});
