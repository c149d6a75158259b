/**
 * Silent TCP connections held by a child process, from one local address: the child holds
 * the descriptors, so `/proc/self/fd` of the test process counts the relay's side alone.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { createConnection, type Socket } from "node:net";
import { WebSocket } from "ws";
import { DEFAULT_LIMITS, PROTOCOL_VERSION } from "../../shared/tunnel/constants.js";
import type { Frame } from "../../shared/tunnel/frame.js";
import { encodeFrame, FrameDecoder } from "../../shared/tunnel/frame-codec.js";

/** Descriptors this process holds now. */
export function openDescriptors(): number {
  return readdirSync("/proc/self/fd").length;
}

export interface Flood {
  /** Connections that completed their TCP handshake, and those closed since (by the relay). */
  state(): { open: number; closed: number };
  stop(): void;
}

const CHILD = `
  const net = require("node:net");
  const [targets, n, localAddress] = JSON.parse(process.argv[1]);
  let open = 0, closed = 0;
  for (const port of targets) for (let i = 0; i < n; i++) {
    const s = net.connect({ port, host: "127.0.0.1", localAddress });
    s.on("connect", () => { open++; });
    s.on("error", () => {});
    s.on("close", () => { closed++; });
  }
  setInterval(() => process.stdout.write(JSON.stringify({ open, closed }) + "\\n"), 50);
`;

/** `n` silent connections to each of `ports` from `localAddress`, held until `stop()`. */
export function flood(ports: readonly number[], n: number, localAddress = "127.0.0.1"): Flood {
  const child: ChildProcess = spawn(
    process.execPath,
    ["-e", CHILD, JSON.stringify([ports, n, localAddress])],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  let last = { open: 0, closed: 0 };
  let text = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    text += d;
    const lines = text.split("\n");
    text = lines.pop() ?? "";
    const latest = lines.at(-1);
    if (latest) last = JSON.parse(latest) as { open: number; closed: number };
  });
  return {
    state: () => last,
    stop: () => {
      child.kill("SIGKILL");
    },
  };
}

/** A TCP connection from `localAddress`, once connected. */
export function connectFrom(port: number, localAddress: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ port, host: "127.0.0.1", localAddress });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

/**
 * A hello with `token` over a raw WebSocket from `localAddress`: the first frame the relay
 * answers with (a welcome, or a goaway), or the close code when none came.
 */
export async function helloFrom(
  tunnelPort: number,
  token: string,
  localAddress: string,
  timeoutMs = 10_000,
): Promise<Frame | number> {
  const ws = new WebSocket(`ws://127.0.0.1:${tunnelPort}/tunnel`, { perMessageDeflate: false, localAddress });
  const timer = setTimeout(() => ws.terminate(), timeoutMs);
  try {
    return await new Promise<Frame | number>((resolve, reject) => {
      const decoder = new FrameDecoder(DEFAULT_LIMITS);
      ws.on("error", reject);
      ws.on("close", (code) => resolve(code));
      ws.on("open", () =>
        ws.send(
          encodeFrame({
            type: "hello",
            body: { version: PROTOCOL_VERSION, token, agentVersion: "0.0.0-test", capabilities: [] },
          }),
        ),
      );
      ws.on("message", (data: Buffer) => decoder.push(data, (frame) => resolve(frame)));
    });
  } finally {
    clearTimeout(timer);
    ws.terminate();
  }
}
