import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it, mock } from "node:test";
import { Heartbeat } from "../../shared/tunnel/heartbeat.js";

const TIMERS = { pingIntervalMs: 2_500, pingTimeoutMs: 7_500 };

/** A heartbeat on mocked timers and a clock the test moves, 1 ms at a time. */
function rig() {
  let clock = 0;
  const pings: number[] = [];
  const silences: Array<{ at: number; silentMs: number }> = [];
  const hb = new Heartbeat(
    TIMERS,
    () => pings.push(clock),
    (silentMs) => silences.push({ at: clock, silentMs }),
    () => clock,
  );
  const advance = (ms: number, each?: (t: number) => void): void => {
    for (let i = 0; i < ms; i++) {
      clock++;
      mock.timers.tick(1);
      each?.(clock);
    }
  };
  return { hb, pings, silences, advance, now: () => clock };
}

describe("heartbeat", () => {
  beforeEach(() => mock.timers.enable({ apis: ["setInterval", "setTimeout"] }));
  afterEach(() => mock.timers.reset());

  it("pings every interval and never reports a peer heard now and then, however long", () => {
    const { hb, pings, silences, advance } = rig();
    hb.start();
    // bytes every 7 s: never 7.5 s of silence
    advance(60_000, (t) => {
      if (t % 7_000 === 0) hb.heard();
    });
    assert.equal(pings.length, 24, "one PING every 2.5 s");
    assert.equal(pings[0], 2_500);
    assert.deepEqual(silences, []);
    hb.stop();
  });

  it("reports the silence once, exactly a timeout after the last bytes heard", () => {
    const { hb, silences, advance, now } = rig();
    hb.start();
    advance(4_321, (t) => {
      if (t % 1_000 === 0) hb.heard();
    });
    hb.heard();
    const lastHeard = now();
    advance(3 * TIMERS.pingTimeoutMs);
    assert.equal(silences.length, 1, JSON.stringify(silences));
    // counted in ping intervals, as before, this was up to 2 intervals (5 s) later
    assert.equal(silences[0]!.at, lastHeard + TIMERS.pingTimeoutMs);
    assert.equal(silences[0]!.silentMs, TIMERS.pingTimeoutMs);
  });

  it("counts a silence that began before start()", () => {
    const { hb, silences, advance } = rig();
    advance(5_000);
    hb.start();
    advance(TIMERS.pingTimeoutMs);
    assert.equal(silences[0]?.at, TIMERS.pingTimeoutMs);
  });

  it("stops pinging and watching when stopped", () => {
    const { hb, pings, silences, advance } = rig();
    hb.start();
    advance(3_000);
    hb.stop();
    advance(3 * TIMERS.pingTimeoutMs);
    assert.equal(pings.length, 1);
    assert.deepEqual(silences, []);
  });
});
