/**
 * A proxy that takes the agent's connection and never answers the CONNECT: `ws`'s handshake
 * timeout does not run before the connection to the relay exists, so the proxy agent's own
 * deadline must end the wait, close the socket to the proxy, and let the agent dial again.
 */
import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { startAgent } from "../../agent/agent.js";
import { parseProxyUrl } from "../../agent/http-proxy.js";
import { parseNoProxy } from "../../agent/no-proxy.js";
import { allowAll } from "../../agent/policy.js";
import { waitFor } from "../helpers/ports.js";
import { captureRelayLog } from "../helpers/relay-log.js";

describe("a proxy that never answers the CONNECT", () => {
  const sockets = new Set<Socket>();
  /** Connections the silent proxy took: [opened at, closed at] (ms, performance.now()). */
  const seen: Array<{ readonly opened: number; closed: number | null; request: string }> = [];
  const proxy = createServer((s) => {
    const entry = { opened: performance.now(), closed: null as number | null, request: "" };
    seen.push(entry);
    sockets.add(s);
    s.on("data", (d: Buffer) => {
      entry.request += d.toString("latin1");
    });
    s.on("error", () => {});
    s.on("close", () => {
      entry.closed = performance.now();
      sockets.delete(s);
    });
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => proxy.close(() => resolve()));
  });

  before(() => new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve)));

  it("gives up after the handshake timeout, closes its socket to the proxy, says so and dials again", async () => {
    const address = proxy.address();
    assert.ok(address !== null && typeof address === "object");
    const log = captureRelayLog();
    const handshakeTimeoutMs = 300;
    // the agent's timer starts before its connection reaches the proxy, which on a busy machine
    // accepts it late: the wait is counted from before the agent started
    const startedAt = performance.now();
    const agent = startAgent({
      relayUrl: "ws://relay.example:8443/tunnel",
      token: "upagt_silent-proxy-test",
      policy: allowAll(),
      logger: log.logger,
      backoff: { baseMs: 20, maxMs: 50 },
      handshakeTimeoutMs,
      proxy: {
        url: parseProxyUrl(`http://127.0.0.1:${address.port}`, "HTTPS_PROXY"),
        noProxy: parseNoProxy(""),
      },
    });
    try {
      await waitFor(() => seen.length >= 2 && seen[0]!.closed !== null, {
        timeoutMs: 10_000,
        what: "a second CONNECT after the first one was given up",
      });
      const first = seen[0]!;
      assert.match(first.request, /^CONNECT relay\.example:8443 HTTP\/1\.1\r\n/);
      const waited = first.closed! - startedAt;
      assert.ok(waited >= handshakeTimeoutMs - 20, `gave up after ${waited} ms`);
      const failure = log.lines().find((l) => l.msg === "tunnel connection failed");
      assert.equal(
        failure?.["err"],
        `proxy http://127.0.0.1:${address.port}: did not answer CONNECT relay.example:8443 within ${handshakeTimeoutMs} ms`,
      );
      assert.equal(agent.upCount(), 0);
    } finally {
      await agent.close();
    }
  });

  it("closes its socket to the proxy at once when the agent stops during the CONNECT", async () => {
    const address = proxy.address();
    assert.ok(address !== null && typeof address === "object");
    const index = seen.length;
    const agent = startAgent({
      relayUrl: "ws://relay.example:8443/tunnel",
      token: "upagt_silent-proxy-test",
      policy: allowAll(),
      logger: captureRelayLog().logger,
      handshakeTimeoutMs: 60_000,
      proxy: {
        url: parseProxyUrl(`http://127.0.0.1:${address.port}`, "HTTPS_PROXY"),
        noProxy: parseNoProxy(""),
      },
    });
    let stopped = false;
    try {
      await waitFor(() => seen[index]?.request.startsWith("CONNECT "), { what: "the CONNECT" });
      await agent.close();
      stopped = true;
      // bounded far below the 60 s deadline: the stop itself ended the wait
      await waitFor(() => seen[index]!.closed !== null, {
        timeoutMs: 5_000,
        what: "the proxy socket to close",
      });
      assert.equal(seen.length, index + 1, "a stopped agent does not dial again");
    } finally {
      if (!stopped) await agent.close();
    }
  });
});
