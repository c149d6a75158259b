import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  formatPortRange,
  nextPort,
  parsePortRange,
  portDistance,
  portsFrom,
  rangeContains,
  rangeSize,
  rangesOverlap,
  translatePort,
} from "../../shared/net/port-range.js";

const R = { start: 30000, end: 30003 };

describe("port ranges", () => {
  it("parse, format, size, contain, overlap, translate and measure", () => {
    assert.deepEqual(parsePortRange("30000-30003"), R);
    assert.deepEqual(parsePortRange(21), { start: 21, end: 21 });
    assert.match(String(parsePortRange("30003-30000")), /ends before it starts/);
    assert.equal(formatPortRange(R), "30000-30003");
    assert.equal(formatPortRange({ start: 21, end: 21 }), 21);
    assert.equal(rangeSize(R), 4);
    assert.ok(rangeContains(R, 30000) && rangeContains(R, 30003) && !rangeContains(R, 30004));
    assert.ok(
      rangesOverlap(R, { start: 30003, end: 30009 }) && !rangesOverlap(R, { start: 30004, end: 30009 }),
    );
    assert.equal(translatePort(R, { start: 40000, end: 40003 }, 30002), 40002);
    assert.deepEqual(
      [29990, 30001, 30010].map((p) => portDistance(R, p)),
      [10, 0, 7],
    );
  });

  it("portsFrom yields every port once, from the one given, wrapping around", () => {
    assert.deepEqual([...portsFrom(R, 30000)], [30000, 30001, 30002, 30003]);
    assert.deepEqual([...portsFrom(R, 30002)], [30002, 30003, 30000, 30001]);
    assert.deepEqual([...portsFrom(R, 30003)], [30003, 30000, 30001, 30002]);
    // outside the range: as if the range repeated on both sides
    assert.deepEqual([...portsFrom(R, 30005)], [30001, 30002, 30003, 30000]);
    assert.deepEqual([...portsFrom(R, 29999)], [30003, 30000, 30001, 30002]);
    assert.deepEqual([...portsFrom(R, 0)], [30000, 30001, 30002, 30003]);
    assert.deepEqual([...portsFrom({ start: 21, end: 21 }, 99)], [21]);
  });

  it("nextPort moves on by one and wraps from the end to the start", () => {
    assert.equal(nextPort(R, 30000), 30001);
    assert.equal(nextPort(R, 30002), 30003);
    assert.equal(nextPort(R, 30003), 30000);
    assert.equal(nextPort({ start: 21, end: 21 }, 21), 21);
  });
});
