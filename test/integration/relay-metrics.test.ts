/**
 * `GET /metrics` scraped after real traffic: the README's metric names and labels with the
 * values that traffic must have produced, on a registry of the relay's own (a second relay in
 * the same process counts nothing of the first's).
 */
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { waitFor } from "../helpers/ports.js";
import { scrapeText } from "../helpers/prometheus.js";
import { type Stack, socksConnect, socksReply, startStack } from "../helpers/stack.js";
import { readAll, startTarget, type Target } from "../helpers/targets.js";

/** The value of one sample line, `name{labels} value`; undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const escaped = series.replace(/[{}"\\]/g, (c) => `\\${c}`);
  const m = new RegExp(`^${escaped} ([0-9.e+-]+)$`, "m").exec(text);
  return m ? Number(m[1]) : undefined;
}

describe("relay metrics", () => {
  let stack: Stack;
  let echo: Target;
  const open: Socket[] = [];

  before(async () => {
    echo = await startTarget((s) => s.pipe(s));
    stack = await startStack();
    await stack.addMapping({
      virtualHost: "echo.corp",
      virtualPort: 7,
      internalHost: "127.0.0.1",
      internalPort: echo.port,
    });
  });

  after(async () => {
    for (const s of open) s.destroy();
    await stack?.close();
    await echo?.close();
  });

  it("counts what real traffic did: replies, bytes each way, tunnels, and no connection left", async () => {
    const sizes = [1000, 250_000];
    for (const n of sizes) {
      const s = await socksConnect(stack.socksPort, stack.client, "echo.corp", 7);
      open.push(s);
      const back = readAll(s);
      s.end(Buffer.alloc(n, 0x5a));
      assert.equal((await back).length, n);
    }
    const denied = await socksReply(stack.socksPort, stack.client, "echo.corp", 9);
    open.push(denied.socket);
    assert.equal(denied.reply, 0x02);
    const badAuth = await socksReply(stack.socksPort, { username: "nobody", password: "x" }, "echo.corp", 7);
    open.push(badAuth.socket);
    assert.equal(badAuth.reply, "auth-failed");

    const total = sizes.reduce((a, b) => a + b, 0);
    // a connection's bytes are counted when both sides are done; wait for that, bounded
    const text = await waitFor(
      async () => {
        const t = await scrapeText(stack);
        return sample(t, "underpass_connections") === 0 &&
          sample(t, 'underpass_bytes_total{direction="down"}') === total
          ? t
          : null;
      },
      { timeoutMs: 10_000, what: "both connections closed and counted" },
    );
    assert.equal(sample(text, 'underpass_bytes_total{direction="up"}'), total);
    assert.equal(sample(text, 'underpass_socks_replies_total{reply="0"}'), 2);
    assert.equal(sample(text, 'underpass_socks_replies_total{reply="2"}'), 1);
    assert.equal(
      sample(text, 'underpass_socks_replies_total{reply="1"}'),
      undefined,
      "an auth failure is no SOCKS reply",
    );
    assert.equal(sample(text, "underpass_tunnels"), 1);
    assert.equal(sample(text, "underpass_tunnels_accepted_total"), 1);
    assert.equal(sample(text, "underpass_tunnels_rejected_total"), 0);
    assert.equal(sample(text, "underpass_streams"), 0);
    assert.equal(sample(text, "underpass_socks_open_seconds_count"), 2);
    assert.ok((sample(text, "underpass_socks_open_seconds_sum") ?? 0) > 0);
    for (const name of ["underpass_tunnels", "underpass_bytes_total", "underpass_socks_replies_total"]) {
      assert.match(text, new RegExp(`^# TYPE ${name} (gauge|counter)$`, "m"), name);
    }
    assert.match(text, /^process_cpu_user_seconds_total /m, "the process metrics are there");
    assert.match(text, /^nodejs_eventloop_lag_seconds /m);
  });

  it("shows the bytes of a live connection before it closes, in all and in its location", async () => {
    const byLocation = 'underpass_location_bytes_total{direction="up",location="default"}';
    const earlier = await scrapeText(stack);
    const before = sample(earlier, 'underpass_bytes_total{direction="up"}') ?? 0;
    const beforeHere = sample(earlier, byLocation) ?? 0;
    const s = await socksConnect(stack.socksPort, stack.client, "echo.corp", 7);
    open.push(s);
    s.write(Buffer.alloc(5000, 0x41));
    await readAll(s, 5000);
    const text = await scrapeText(stack);
    assert.equal(sample(text, "underpass_connections"), 1);
    assert.equal(sample(text, 'underpass_bytes_total{direction="up"}'), before + 5000);
    assert.equal(sample(text, byLocation), beforeHere + 5000, "and in its location");
    s.destroy();
  });

  it("keeps each relay's counts to itself", async () => {
    const other = await startStack({ agent: false });
    try {
      const text = await scrapeText(other);
      assert.equal(sample(text, "underpass_tunnels_accepted_total"), 0);
      assert.equal(sample(text, 'underpass_bytes_total{direction="up"}'), 0);
      assert.equal(sample(text, 'underpass_socks_replies_total{reply="0"}'), undefined);
    } finally {
      await other.close();
    }
    assert.equal(
      sample(await scrapeText(stack), "underpass_tunnels_accepted_total"),
      1,
      "the first relay is untouched",
    );
  });
});
