/**
 * A carried connection that moves no byte for the idle timeout is reset; one that keeps
 * carrying is not; and the control connection of an `"ftp"` mapping, silent while its
 * transfers run, has its own timeout, off by default.
 */
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { LIMIT } from "../../cloud/limits/limit-names.js";
import { type Stack, socksConnect, startStack } from "../helpers/stack.js";
import { bannerEcho, readAll, startTarget, type Target } from "../helpers/targets.js";

const IDLE_MS = 600;

/** Resolves when the relay ends the connection (a reset reaches the client as an error or a close). */
function ended(s: Socket): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    s.on("error", () => {});
    s.once("close", () => resolve(performance.now() - t0));
  });
}

describe("the idle timeout", () => {
  let stack: Stack;
  let target: Target;
  const open: Socket[] = [];

  before(async () => {
    target = await startTarget(bannerEcho());
    stack = await startStack({ relay: { bounds: { idleTimeoutMs: IDLE_MS } } });
    for (const [host, protocol] of [
      ["tcp.idle", "tcp"],
      ["ftp.idle", "ftp"],
    ] as const) {
      await stack.addMapping({
        virtualHost: host,
        virtualPort: 21,
        internalHost: "127.0.0.1",
        internalPort: target.port,
        protocol,
      });
    }
  });

  after(async () => {
    for (const s of open) s.destroy();
    await stack?.close();
    await target?.close();
  });

  async function connect(host: string): Promise<Socket> {
    const s = await socksConnect(stack.socksPort, stack.client, host, 21);
    open.push(s);
    assert.equal((await readAll(s, 11)).toString(), "220 ready\r\n");
    return s;
  }

  it("resets a silent connection, keeps a talking one and an FTP control connection", async (t) => {
    const hits: string[] = [];
    const stop = stack.relay.events.limitHit.subscribe((m) => hits.push(m.limit));
    t.after(stop);
    const ftp = await connect("ftp.idle");
    const talking = await connect("tcp.idle");
    const ping = setInterval(() => talking.write("x\r\n"), IDLE_MS / 4);
    t.after(() => clearInterval(ping));
    talking.on("data", () => {});
    const silent = await connect("tcp.idle");
    const silentFor = await ended(silent);
    assert.ok(
      silentFor >= IDLE_MS * 0.9,
      `reset after ${silentFor.toFixed(0)} ms of silence, not before ${IDLE_MS}`,
    );
    // a second silent one, opened now: by its reset the FTP control connection has been idle twice the timeout
    const again = await connect("tcp.idle");
    await ended(again);
    assert.equal(ftp.destroyed, false, "the FTP control connection is not timed out by default");
    assert.equal(talking.destroyed, false, "a connection that carries bytes is not idle");
    assert.ok(hits.filter((h) => h === LIMIT.IDLE_TIMEOUT).length >= 2);
    const live = (await stack.api("GET", "/v1/connections")).body as Array<{ virtualHost: string }>;
    assert.deepEqual(live.map((c) => c.virtualHost).sort(), ["ftp.idle", "tcp.idle"]);
  });
});
