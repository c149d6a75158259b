/**
 * The agent's half of the tunnel hello, against a scripted relay: a stock `ws` server on port 0
 * that decodes what the agent sends with the frame codec and answers as each test says. A relay
 * that never answers the hello is left after the welcome timeout and dialled again; a relay that
 * refuses the protocol version is logged with its reason, and dialled again.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import type { WebSocket } from "ws";
import { allowAll } from "../../agent/policy.js";
import { TunnelClient, type TunnelState } from "../../agent/tunnel-client.js";
import type { Logger } from "../../shared/logger.js";
import { DEFAULT_LIMITS, GOAWAY_CODE, PROTOCOL_VERSION } from "../../shared/tunnel/constants.js";
import type { Frame } from "../../shared/tunnel/frame.js";
import { encodeFrame, FrameDecoder } from "../../shared/tunnel/frame-codec.js";
import { waitFor } from "../helpers/ports.js";
import { captureRelayLog, type RelayLog, type RelayLogLine } from "../helpers/relay-log.js";
import { startWsServer } from "../helpers/ws-peers.js";

/** One agent connection as the scripted relay sees it. */
interface Connection {
  readonly ws: WebSocket;
  /** When the upgrade was accepted (ms, performance.now()): before the agent saw it open. */
  readonly acceptedAt: number;
  /** Frames the agent sent, each with when it arrived (ms, performance.now()). */
  readonly frames: Array<{ readonly frame: Frame; readonly at: number }>;
}

interface ScriptedRelay {
  readonly url: string;
  readonly connections: Connection[];
  close(): Promise<void>;
}

/** A relay that accepts WebSockets and calls `answer` with every frame an agent sends. */
async function scriptedRelay(answer: (conn: Connection, frame: Frame) => void): Promise<ScriptedRelay> {
  const connections: Connection[] = [];
  const server = await startWsServer((ws) => {
    const conn: Connection = { ws, acceptedAt: performance.now(), frames: [] };
    connections.push(conn);
    const decoder = new FrameDecoder(DEFAULT_LIMITS);
    ws.on("message", (data: Buffer) =>
      decoder.push(data, (frame) => {
        conn.frames.push({ frame, at: performance.now() });
        answer(conn, frame);
      }),
    );
  });
  return { url: server.url, connections, close: () => server.close() };
}

/** The agent's log lines with message `msg` (the capture is a plain pino capture, whoever logs). */
function linesOf(log: RelayLog, msg: string): RelayLogLine[] {
  return log.lines().filter((l) => l.msg === msg);
}

/** A tunnel client towards `url` that records every state it passes through. */
function client(url: string, logger: Logger, welcomeTimeoutMs = 10_000) {
  const states: TunnelState[] = [];
  const c = new TunnelClient({
    relayUrl: url,
    token: "upagt_scripted-relay-test",
    policy: allowAll(),
    logger,
    backoff: { baseMs: 20, maxMs: 50 },
    welcomeTimeoutMs,
  });
  c.onState = (s) => states.push(s);
  return { c, states };
}

describe("the agent's tunnel hello", () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const f of cleanups.reverse()) await f();
  });

  it("leaves a relay that never answers the hello after the welcome timeout, with GOAWAY HELLO_TIMEOUT, and dials again", async () => {
    const relay = await scriptedRelay(() => {}); // hears everything, answers nothing
    cleanups.push(() => relay.close());
    const log = captureRelayLog();
    const welcomeTimeoutMs = 300;
    const { c, states } = client(relay.url, log.logger, welcomeTimeoutMs);
    cleanups.push(() => c.stop());
    c.start();

    await waitFor(() => relay.connections.length >= 2, {
      timeoutMs: 10_000,
      what: "the agent to dial the silent relay a second time",
    });
    const first = relay.connections[0]!.frames;
    assert.equal(first[0]?.frame.type, "hello", "the agent speaks first");
    const hello = first[0]!.frame as Frame & { type: "hello" };
    assert.equal((hello.body as { version: number }).version, PROTOCOL_VERSION);
    const goaway = first.find((f) => f.frame.type === "goaway");
    assert.ok(goaway, "the agent says why it leaves");
    assert.equal((goaway.frame as Frame & { type: "goaway" }).code, GOAWAY_CODE.HELLO_TIMEOUT);
    // the timer really waited (a little slack for timer granularity), counted from the upgrade:
    // the agent starts it once the socket is open, and its hello may arrive late on a busy machine
    const waited = goaway.at - relay.connections[0]!.acceptedAt;
    assert.ok(waited >= welcomeTimeoutMs - 20, `left after ${waited} ms`);
    await waitFor(() => relay.connections[1]!.frames[0]?.frame.type === "hello", {
      what: "a hello on the second connection",
    });
    assert.ok(linesOf(log, "the relay did not answer the hello").length >= 1);
    assert.ok(!states.includes("up"), `never up: ${states.join(" → ")}`);
    assert.equal(c.lastRefusal, null, "silence is not a refusal");
  });

  it("logs the reason of a relay that refuses the protocol version, and keeps dialling", async () => {
    const reason = "tunnel protocol version 1 is not supported; this relay speaks 2";
    const relay = await scriptedRelay((conn, frame) => {
      if (frame.type !== "hello") return;
      conn.ws.send(encodeFrame({ type: "goaway", code: GOAWAY_CODE.UNSUPPORTED_VERSION, reason }));
      conn.ws.close(4000 + GOAWAY_CODE.UNSUPPORTED_VERSION, "unsupported version");
    });
    cleanups.push(() => relay.close());
    const log = captureRelayLog();
    const { c, states } = client(relay.url, log.logger);
    cleanups.push(() => c.stop());
    c.start();

    const refusals = await waitFor(
      () => {
        const l = linesOf(log, "the relay refused this agent");
        return l.length >= 2 ? l : undefined;
      },
      { timeoutMs: 10_000, what: "two logged refusals" },
    );
    assert.equal(refusals[0]!["reason"], reason);
    assert.equal(refusals[0]!["code"], GOAWAY_CODE.UNSUPPORTED_VERSION);
    assert.equal(refusals[0]!["level"], 50, "a refusal is an error, not a passing warning");
    assert.equal(c.lastRefusal, reason);
    assert.ok(relay.connections.length >= 2, "the agent dialled again");
    assert.ok(!states.includes("up"), `never up: ${states.join(" → ")}`);
    assert.equal(linesOf(log, "the relay did not answer the hello").length, 0, "an answer is not silence");
  });
});
