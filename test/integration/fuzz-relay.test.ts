/**
 * A relay under a fuzzing client keeps serving a legitimate one: random bytes at the SOCKS
 * port (raw and after a valid greeting), random frames inside a real WebSocket on the tunnel
 * port, random bodies at the admin API — bounded in count — while a legitimate client opens
 * connections and echoes data through the tunnel, every one of which must succeed.
 */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { WebSocket } from "ws";
import { ADMIN_TOKEN, type Stack, socksConnect, startStack } from "../helpers/stack.js";
import { readAll, startTarget, type Target } from "../helpers/targets.js";

/** Sends `bytes` to host:port and waits (bounded) until the peer closes or 2 s pass. */
function throwAt(port: number, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve) => {
    const s: Socket = connect(port, "127.0.0.1");
    const done = (): void => {
      clearTimeout(timer);
      s.destroy();
      resolve();
    };
    const timer = setTimeout(done, 2_000);
    s.on("connect", () => s.end(Buffer.from(bytes)));
    s.on("data", () => {});
    s.on("error", done);
    s.on("close", done);
  });
}

function fuzzWebSocket(port: number, messages: readonly Uint8Array[]): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/tunnel`);
    const done = (): void => {
      clearTimeout(timer);
      ws.terminate();
      resolve();
    };
    const timer = setTimeout(done, 2_000);
    ws.on("open", () => {
      for (const m of messages) ws.send(Buffer.from(m));
    });
    ws.on("error", done);
    ws.on("close", done);
  });
}

describe("a relay under a fuzzing client", () => {
  let stack: Stack;
  let echo: Target;

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
    await stack?.close();
    await echo?.close();
  });

  it("keeps serving a legitimate client while random input hits all three ports", async () => {
    const socksPort = stack.socksPort;
    const tunnelPort = stack.relay.tunnelAddress.port;
    const adminPort = stack.relay.adminAddress.port;
    let stop = false;
    let legitimate = 0;
    const legit = (async () => {
      while (!stop) {
        const s = await socksConnect(socksPort, stack.client, "echo.corp", 7);
        const payload = Buffer.from(`hello ${legitimate}\n`.repeat(100));
        const back = readAll(s, payload.length);
        s.write(payload);
        assert.deepEqual(await back, payload);
        s.destroy();
        legitimate++;
      }
    })();
    const bytes = fc.uint8Array({ minLength: 1, maxLength: 512 });
    await fc.assert(
      fc.asyncProperty(
        bytes,
        bytes,
        fc.array(bytes, { minLength: 1, maxLength: 8 }),
        fc.oneof(fc.jsonValue(), fc.string()),
        async (raw, afterGreeting, frames, body) => {
          await Promise.all([
            throwAt(socksPort, raw),
            throwAt(socksPort, Buffer.concat([Buffer.from([5, 1, 2]), Buffer.from(afterGreeting)])),
            fuzzWebSocket(tunnelPort, frames),
            fetch(`http://127.0.0.1:${adminPort}/v1/mappings`, {
              method: "POST",
              headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
              body: typeof body === "string" ? body : JSON.stringify(body),
              signal: AbortSignal.timeout(5_000),
            }).then((r) => {
              assert.ok(
                r.status === 201 || r.status === 400 || r.status === 409,
                `admin answered ${r.status}`,
              );
              return r.arrayBuffer();
            }),
          ]);
        },
      ),
      { numRuns: 60 },
    );
    stop = true;
    await legit;
    assert.ok(legitimate > 0, "the legitimate client got through meanwhile");
    // and still does, and the agent's tunnel is the one it had
    const s = await socksConnect(socksPort, stack.client, "echo.corp", 7);
    s.end("still here");
    assert.equal((await readAll(s)).toString(), "still here");
    assert.equal(stack.agent?.upCount(), 1);
  });
});
