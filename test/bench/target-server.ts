/**
 * The bench's on-premise target, run as its own process so that hashing and generating bytes
 * do not share a core with the client: `node target-server.js <basePort>`. Speaks
 * target-protocol.ts on 127.0.0.1 and exits on SIGTERM or SIGINT, or when its stdin closes
 * (the harness went away).
 */
import { createHash } from "node:crypto";
import type { Socket } from "node:net";
import { startTarget } from "../helpers/targets.js";
import { PatternStream } from "./data-pattern.js";
import {
  SINK_HEADER_SIZE,
  SOURCE_HEADER_SIZE,
  TARGET_PORT,
  TARGET_PORT_COUNT,
  TARGET_READY,
} from "./target-protocol.js";

/** Calls `onHeader` with the first `size` bytes and hands the rest to `onRest`. */
function readHeader(socket: Socket, size: number, onHeader: (header: Buffer, rest: Buffer) => void): void {
  let head: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    if (head.length < size) return;
    socket.off("data", onData);
    onHeader(head.subarray(0, size), head.subarray(size));
  };
  socket.on("data", onData);
}

function serveSink(socket: Socket): void {
  readHeader(socket, SINK_HEADER_SIZE, (header, rest) => {
    let left = Number(header.readBigUInt64BE(0));
    const hash = createHash("sha256");
    const take = (chunk: Buffer): void => {
      if (left <= 0) return;
      const part = chunk.length <= left ? chunk : chunk.subarray(0, left);
      hash.update(part);
      left -= part.length;
      if (left === 0) socket.write(hash.digest());
    };
    socket.on("data", take);
    if (rest.length > 0) take(rest);
    if (left === 0) socket.write(hash.digest());
  });
}

function serveSource(socket: Socket): void {
  readHeader(socket, SOURCE_HEADER_SIZE, (header) => {
    const stream = new PatternStream(header.readUInt32BE(0), Number(header.readBigUInt64BE(4)));
    const pump = (): void => {
      for (let chunk = stream.next(); chunk !== null; chunk = stream.next()) {
        if (!socket.write(chunk)) {
          socket.once("drain", pump);
          return;
        }
      }
    };
    pump();
  });
}

function serveEcho(socket: Socket): void {
  socket.on("data", (chunk: Buffer) => socket.write(chunk));
  socket.on("end", () => socket.end());
}

const SERVE = [serveSink, serveSource, serveEcho] as const;

async function main(): Promise<void> {
  const base = Number(process.argv[2]);
  if (!Number.isInteger(base) || base < 1 || base + TARGET_PORT_COUNT - 1 > 65535) {
    throw new Error(`usage: target-server.js <basePort>, not ${process.argv[2]}`);
  }
  const targets = await Promise.all(
    SERVE.map((serve, i) =>
      startTarget(
        (socket) => {
          // a 1-byte echo must not wait for Nagle
          socket.setNoDelay(true);
          serve(socket);
        },
        { port: base + i },
      ),
    ),
  );
  const stop = (): void => {
    void Promise.all(targets.map((t) => t.close())).finally(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdin.on("end", stop);
  process.stdin.on("error", stop);
  process.stdin.resume();
  process.stdout.write(
    `${TARGET_READY} sink=${base + TARGET_PORT.SINK} source=${base + TARGET_PORT.SOURCE} echo=${base + TARGET_PORT.ECHO}\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`bench target: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
