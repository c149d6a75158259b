/**
 * A tunnel peer that keeps asking for answers and never reads them, over a real WebSocket on
 * port 0: PINGs (PONGs owed), OPENs the agent's local policy refuses (OPEN_RESULTs owed), and
 * OPENs whose targets reset at once (OPEN_RESULTs and RESETs owed). Once the kernel's buffers
 * are full, the answers would pile up in user space without end; instead the side under the
 * flood, relay or agent, cuts the tunnel with GOAWAY LIMIT_EXCEEDED at maxQueuedControlBytes,
 * holds no more than that meanwhile, and a well-behaved tunnel in the same process keeps
 * carrying data all along.
 */
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import type { WebSocket } from "ws";
import { parsePolicy } from "../../agent/policy.js";
import { TunnelClient } from "../../agent/tunnel-client.js";
import { NotAllowedError } from "../../shared/errors.js";
import { createLogger, type Logger } from "../../shared/logger.js";
import {
  DEFAULT_LIMITS,
  DEFAULT_MAX_QUEUED_CONTROL_BYTES,
  GOAWAY_CODE,
  OPEN_KIND,
  PROTOCOL_VERSION,
  RESET_CODE,
} from "../../shared/tunnel/constants.js";
import type { Frame } from "../../shared/tunnel/frame.js";
import { encodeFrame, FrameDecoder } from "../../shared/tunnel/frame-codec.js";
import { MuxSession } from "../../shared/tunnel/mux-session.js";
import type { MuxStream } from "../../shared/tunnel/mux-stream.js";
import { WebSocketTransport } from "../../shared/tunnel/ws-transport.js";
import { waitFor } from "../helpers/ports.js";
import { type Stack, socksConnect, startStack } from "../helpers/stack.js";
import { bannerEcho, readAll, startTarget, type Target } from "../helpers/targets.js";
import { connectWs, startWsServer } from "../helpers/ws-peers.js";

/** The process may grow by this much while a flood is answered and cut, in bytes. */
const RSS_GROWTH_LIMIT = 64 * 1024 * 1024;
/** A flood must be cut within this, in ms (it takes a few seconds on a loaded 2-core machine). */
const CUT_WITHIN_MS = 30_000;
/** Bytes of frames per flood message, one message a turn of the event loop. */
const MESSAGE_BYTES = 64 * 1024;

const FLOOD_WARNING = "the tunnel peer does not read the control frames it is owed; closing the tunnel";

/** A logger that keeps only lines with one of `messages` (a flood logs a line per refused OPEN). */
function keptLog(messages: readonly string[]): {
  logger: Logger;
  lines: () => Array<Record<string, unknown>>;
} {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    // pino writes whole lines, one log call a write; nothing is kept of the lines let go
    write(chunk: Buffer | string, _encoding, callback) {
      for (const text of chunk.toString().split("\n")) {
        if (text === "" || !messages.some((m) => text.includes(m))) continue;
        const line = JSON.parse(text) as Record<string, unknown>;
        if (messages.includes(String(line["msg"]))) lines.push(line);
      }
      callback();
    },
  });
  return { logger: createLogger({ name: "flood", level: "info", destination: sink }), lines: () => lines };
}

/** Frames from `next()`, back to back, in one message of about `bytes`. */
function pack(next: () => Buffer, bytes: number): Buffer {
  const frames: Buffer[] = [];
  let n = 0;
  while (n < bytes) {
    const f = next();
    frames.push(f);
    n += f.length;
  }
  return Buffer.concat(frames);
}

/** The answers a flooding peer gets once it reads again: frames counted by type, the GOAWAY kept. */
interface Heard {
  readonly counts: Map<Frame["type"], number>;
  goaway: (Frame & { type: "goaway" }) | null;
}

/** Decodes what `ws` receives; `onHandshake` hears a HELLO or WELCOME. */
function listen(ws: WebSocket, onHandshake?: () => void): Heard {
  const heard: Heard = { counts: new Map(), goaway: null };
  const decoder = new FrameDecoder(DEFAULT_LIMITS);
  ws.on("message", (data: Buffer) =>
    decoder.push(data, (f) => {
      heard.counts.set(f.type, (heard.counts.get(f.type) ?? 0) + 1);
      if (f.type === "goaway") heard.goaway = f;
      if (f.type === "welcome" || f.type === "hello") onHandshake?.();
    }),
  );
  return heard;
}

/** `promise`, or a rejection naming `what` after `ms`. */
function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

interface FloodReport {
  readonly cutAfterMs: number;
  readonly sentBytes: number;
  readonly peakQueuedControlBytes: number;
  readonly rssGrowth: number;
}

/** Frames to flood with, in messages of about `messageBytes`. */
interface FloodPhase {
  readonly next: () => Buffer;
  readonly messageBytes: number;
}

/**
 * Once the victim holds this much in user space the kernel's buffers towards the flooder are
 * full, and a second phase takes over: what it asks for is then what hits the bound. (Filling
 * the kernel, some 5 MiB on loopback, with 13-byte OPEN_RESULTs alone takes 400 000 OPENs.)
 */
const PREFILL_BYTES = 128 * 1024;

/**
 * Stops reading `socket` and floods `victim` through `ws`: messages of `phases[0]` until the
 * victim holds PREFILL_BYTES when there is a second phase, then of the second, one message a
 * turn of the event loop and each once the last left this process (the flooder holds one
 * message at most), until the victim is closed; samples what it queues and this process's RSS.
 */
async function flood(ws: WebSocket, socket: Duplex, victim: MuxSession, phases: readonly FloodPhase[]) {
  const rssBefore = process.memoryUsage().rss;
  let peakRss = rssBefore;
  let peak = 0;
  const sample = setInterval(() => {
    peak = Math.max(peak, victim.queuedControlBytes);
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, 10);
  socket.pause();
  const start = performance.now();
  let sentBytes = 0;
  let phase = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(
        () => reject(new Error(`no cut after ${CUT_WITHIN_MS} ms and ${sentBytes} bytes of flood`)),
        CUT_WITHIN_MS,
      );
      const step = (err?: Error): void => {
        peak = Math.max(peak, victim.queuedControlBytes);
        if (err || victim.closed) {
          clearTimeout(deadline);
          resolve();
          return;
        }
        if (phase + 1 < phases.length && victim.queuedControlBytes >= PREFILL_BYTES) phase++;
        const { next, messageBytes } = phases[phase]!;
        const message = pack(next, messageBytes);
        sentBytes += message.length;
        ws.send(message, (e) => (e ? step(e) : setImmediate(step)));
      };
      step();
    });
  } finally {
    clearInterval(sample);
  }
  const report: FloodReport = {
    cutAfterMs: Math.round(performance.now() - start),
    sentBytes,
    peakQueuedControlBytes: peak,
    rssGrowth: peakRss - rssBefore,
  };
  return report;
}

/** The flooder reads again: the answers, then the GOAWAY, then the close; resolves with its code. */
async function readToTheEnd(ws: WebSocket, socket: Duplex): Promise<number> {
  const closed = new Promise<number>((resolve) => ws.once("close", (code: number) => resolve(code)));
  socket.resume();
  return bounded(closed, 20_000, "the websocket to close after the GOAWAY");
}

function assertCut(
  report: FloodReport,
  heard: Heard,
  closeCode: number,
  log: Array<Record<string, unknown>>,
) {
  const context = JSON.stringify({ report, counts: [...heard.counts], log });
  assert.ok(report.cutAfterMs < CUT_WITHIN_MS, context);
  assert.ok(report.peakQueuedControlBytes <= DEFAULT_MAX_QUEUED_CONTROL_BYTES, context);
  assert.ok(report.rssGrowth < RSS_GROWTH_LIMIT, `RSS grew ${report.rssGrowth} bytes: ${context}`);
  assert.equal(heard.goaway?.code, GOAWAY_CODE.LIMIT_EXCEEDED, context);
  assert.match(heard.goaway?.reason ?? "", /bytes of control frames wait for the peer to read them/);
  // the relay's gateway closes with 1000 as the session goes; the agent with 4000 + code
  assert.ok(closeCode === 4000 + GOAWAY_CODE.LIMIT_EXCEEDED || closeCode === 1000, context);
  const warning = log.find((l) => l["msg"] === FLOOD_WARNING);
  assert.ok(warning, context);
  assert.equal(warning["bound"], DEFAULT_MAX_QUEUED_CONTROL_BYTES);
  assert.ok(Number(warning["queuedControlBytes"]) <= DEFAULT_MAX_QUEUED_CONTROL_BYTES, context);
}

/** A relay of our own that says welcome to the first hello; the connection is then the test's. */
async function floodingRelay(): Promise<{
  url: string;
  connection: Promise<{ ws: WebSocket; socket: Duplex; heard: Heard }>;
  close(): Promise<void>;
}> {
  let resolve: (c: { ws: WebSocket; socket: Duplex; heard: Heard }) => void = () => {};
  const connection = new Promise<{ ws: WebSocket; socket: Duplex; heard: Heard }>((r) => {
    resolve = r;
  });
  const server = await startWsServer((ws, socket) => {
    const heard = listen(ws, () => {
      const body = { version: PROTOCOL_VERSION, agentId: "ag_flood", location: "default" };
      ws.send(encodeFrame({ type: "welcome", body }), () => resolve({ ws, socket, heard }));
    });
  });
  return { url: server.url, connection, close: () => server.close() };
}

/** PING frames, each with the next nonce. */
function pings(): () => Buffer {
  let nonce = 0;
  return () => encodeFrame({ type: "ping", nonce: nonce++ });
}

/** A flood of PINGs, in messages of 64 KiB. */
const PINGS: FloodPhase = { next: pings(), messageBytes: MESSAGE_BYTES };

/** OPENs on fresh stream ids (odd, increasing) for `host`. */
function opens(host: string): () => Buffer {
  let id = 1;
  return () => {
    const f = encodeFrame({
      type: "open",
      streamId: id,
      kind: OPEN_KIND.CONNECT,
      host,
      port: 9,
      timeoutMs: 1_000,
    });
    id += 2;
    return f;
  };
}

/** The line the bound logs when it bites, and the frame that tipped it over. */
function tippedBy(log: Array<Record<string, unknown>>): unknown {
  return log.find((l) => l["msg"] === FLOOD_WARNING)?.["frame"];
}

describe("a peer that floods requests for answers and never reads them", () => {
  const relayLog = keptLog([FLOOD_WARNING, "tunnel closed"]);
  let stack: Stack;
  let target: Target;
  let good: Socket;
  /** Echo round trips the well-behaved tunnel made; the loop runs until the file is done. */
  let trips = 0;
  let tripError: unknown = null;
  let tripping: Promise<void> | null = null;
  let stopTrips = false;
  const cleanups: Array<() => Promise<void>> = [];

  before(async () => {
    stack = await startStack({ relay: { logger: relayLog.logger } });
    target = await startTarget(bannerEcho("220 echo\r\n"));
    await stack.addMapping({
      virtualHost: "echo.corp.example",
      virtualPort: 21,
      internalHost: "127.0.0.1",
      internalPort: target.port,
    });
    good = await socksConnect(stack.socksPort, stack.client, "echo.corp.example", 21);
    assert.equal((await readAll(good, 10)).toString(), "220 echo\r\n");
    const block = Buffer.alloc(1024, 0x61);
    tripping = (async () => {
      try {
        while (!stopTrips) {
          good.write(block);
          const back = await readAll(good, block.length, 10_000);
          if (!back.equals(block)) throw new Error(`the echo came back as ${back.length} other bytes`);
          trips++;
        }
      } catch (err) {
        tripError = err;
      }
    })();
  });

  after(async () => {
    stopTrips = true;
    await tripping;
    good?.destroy();
    for (const f of cleanups.reverse()) await f();
    await stack?.close();
    await target?.close();
  });

  /** The well-behaved tunnel made round trips while `during` ran, and makes them after. */
  async function carriesOn<T>(during: () => Promise<T>): Promise<T> {
    const before = trips;
    const result = await during();
    assert.equal(tripError, null, "the other tunnel broke");
    assert.ok(trips > before, `the other tunnel carried nothing during the flood (${trips} round trips)`);
    const now = trips;
    await waitFor(() => trips > now, { timeoutMs: 10_000, what: "a round trip after the flood" });
    return result;
  }

  it("the relay cuts an agent that floods PINGs, the relay's other tunnel carries on", async (t) => {
    const flooder = await stack.addAgent("ping-flooder");
    const { ws, socket } = await connectWs(`ws://127.0.0.1:${stack.relay.tunnelAddress.port}/tunnel`);
    cleanups.push(async () => ws.terminate());
    ws.on("error", () => {});
    let welcomed = false;
    const heard = listen(ws, () => {
      welcomed = true;
    });
    ws.send(
      encodeFrame({
        type: "hello",
        body: { version: PROTOCOL_VERSION, token: flooder.token, agentVersion: "flood", capabilities: [] },
      }),
    );
    await waitFor(() => welcomed, { what: "the welcome" });
    const victim = stack.relay.registry.all().find((x) => x.agentId === flooder.id)?.session;
    assert.ok(victim, "the flooder's tunnel is in the registry");

    const report = await carriesOn(() => flood(ws, socket, victim, [PINGS]));
    t.diagnostic(JSON.stringify(report));
    const closeCode = await readToTheEnd(ws, socket);
    assertCut(report, heard, closeCode, relayLog.lines());
    assert.equal(tippedBy(relayLog.lines()), "pong");
    assert.equal(victim.controlOverflows, 1);
    const closed = relayLog.lines().find((l) => l["msg"] === "tunnel closed" && l["agentId"] === flooder.id);
    assert.equal(closed?.["code"], GOAWAY_CODE.LIMIT_EXCEEDED);
  });

  it("the agent cuts a relay that floods PINGs, another tunnel in the process carries on", async (t) => {
    const log = keptLog([FLOOD_WARNING, "tunnel down"]);
    const relay = await floodingRelay();
    cleanups.push(() => relay.close());
    const client = new TunnelClient({
      relayUrl: relay.url,
      token: "upagt_flood-test",
      policy: parsePolicy("10.255.255.1:1"),
      logger: log.logger,
      backoff: { baseMs: 60_000, maxMs: 60_000 },
    });
    cleanups.push(() => client.stop());
    client.start();
    const { ws, socket, heard } = await relay.connection;
    await waitFor(() => client.state === "up", { what: "the agent's tunnel up" });
    const victim = client.session;
    assert.ok(victim);

    const report = await carriesOn(() => flood(ws, socket, victim, [PINGS]));
    t.diagnostic(JSON.stringify(report));
    const closeCode = await readToTheEnd(ws, socket);
    assertCut(report, heard, closeCode, log.lines());
    assert.equal(closeCode, 4000 + GOAWAY_CODE.LIMIT_EXCEEDED);
    assert.equal(tippedBy(log.lines()), "pong");
    const down = log.lines().find((l) => l["msg"] === "tunnel down");
    assert.equal(down?.["code"], GOAWAY_CODE.LIMIT_EXCEEDED, JSON.stringify(log.lines()));
  });

  /**
   * An agent-side session over a real WebSocket to `url` that answers every OPEN as `onOpen`
   * says, and the flooding relay's end of it.
   */
  async function bareAgent(
    relay: Awaited<ReturnType<typeof floodingRelay>>,
    logger: Logger,
    onOpen: (session: MuxSession, stream: MuxStream) => void,
  ) {
    const { ws, socket } = await connectWs(relay.url);
    ws.on("error", () => {});
    const session = new MuxSession(new WebSocketTransport(ws, socket), { role: "agent", logger });
    cleanups.push(async () => session.close(GOAWAY_CODE.NORMAL, "test over"));
    ws.on("message", (data: Buffer) => session.receive(data));
    ws.on("close", () => session.transportClosed("websocket closed"));
    session.onHandshake = () => session.establish(DEFAULT_LIMITS);
    session.onOpen = (stream) => onOpen(session, stream);
    session.sendHandshake({
      type: "hello",
      body: { version: PROTOCOL_VERSION, token: "upagt_x", agentVersion: "test", capabilities: [] },
    });
    const conn = await relay.connection;
    await waitFor(() => session.established, { what: "the session established" });
    return { session, conn };
  }

  for (const [what, onOpen, answers] of [
    [
      "OPENs it refuses: OPEN_RESULTs count",
      (session: MuxSession, stream: MuxStream) =>
        session.reject(stream, new NotAllowedError("local policy: 10.0.0.1 port 9 is not allowed")),
      ["open-result"],
    ],
    [
      "OPENs whose targets reset at once: OPEN_RESULTs and RESETs count",
      (session: MuxSession, stream: MuxStream) => {
        session.accept(stream, "127.0.0.1", 40000);
        stream.reset(RESET_CODE.CONNECTION_RESET, "the target reset the connection");
      },
      ["open-result", "reset"],
    ],
  ] as const) {
    it(`an agent cuts a relay that floods ${what}`, async (t) => {
      const log = keptLog([FLOOD_WARNING]);
      const relay = await floodingRelay();
      cleanups.push(() => relay.close());
      const { session, conn } = await bareAgent(relay, log.logger, onOpen);

      const phases = [PINGS, { next: opens("10.0.0.1"), messageBytes: MESSAGE_BYTES }];
      const report = await carriesOn(() => flood(conn.ws, conn.socket, session, phases));
      t.diagnostic(JSON.stringify(report));
      const closeCode = await readToTheEnd(conn.ws, conn.socket);
      assertCut(report, conn.heard, closeCode, log.lines());
      assert.ok(
        answers.some((a) => a === tippedBy(log.lines())),
        JSON.stringify(log.lines()),
      );
      for (const a of answers)
        assert.ok((conn.heard.counts.get(a) ?? 0) > 0, `${a} frames came before the cut`);
    });
  }

  it("a relay that reads its answers is never cut, however fast it asks", async () => {
    const log = keptLog([FLOOD_WARNING]);
    const relay = await floodingRelay();
    cleanups.push(() => relay.close());
    const { session, conn } = await bareAgent(relay, log.logger, (s, stream) =>
      s.reject(stream, new NotAllowedError("local policy: refused")),
    );
    // 16 MiB of PINGs in messages of 2 MiB, read as they come: 16 times the bound in PONGs, and
    // more in one turn of the agent's event loop (libuv reads up to 32 × 64 KiB at once) than the
    // bound, which counts only what the kernel does not take
    const total = 16 * 1024 * 1024;
    const burst = 2 * 1024 * 1024;
    let sent = 0;
    let pings = 0;
    const next = (): Buffer => {
      pings++;
      return encodeFrame({ type: "ping", nonce: pings });
    };
    await bounded(
      new Promise<void>((resolve, reject) => {
        const step = (err?: Error): void => {
          if (err) return reject(err);
          if (sent >= total) return resolve();
          const message = pack(next, burst);
          sent += message.length;
          conn.ws.send(message, (e) => (e ? step(e) : setImmediate(step)));
        };
        step();
      }),
      CUT_WITHIN_MS,
      "16 MiB of PINGs sent",
    );
    await waitFor(() => conn.heard.counts.get("pong") === pings, {
      timeoutMs: 20_000,
      what: () => `${pings} PONGs (${conn.heard.counts.get("pong")} so far)`,
    });
    assert.equal(session.closed, false, JSON.stringify(log.lines()));
    assert.equal(session.controlOverflows, 0);
    assert.deepEqual(log.lines(), []);
  });
});
