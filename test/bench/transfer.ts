/**
 * The client side of one transfer over an established connection to the bench target:
 * upload to the sink (the sink answers the SHA-256 of what it got) or download from the
 * source (hashed here). Either way the digest must match the one of the pattern sent.
 */
import { createHash } from "node:crypto";
import type { Socket } from "node:net";
import { PatternStream, patternDigest } from "./data-pattern.js";
import { DIGEST_SIZE, sinkHeader, sourceHeader } from "./target-protocol.js";

/** Rejects when the socket breaks before `finished()` says the transfer is complete. */
function watchBreak(socket: Socket, what: () => string, reject: (err: Error) => void): () => void {
  const onError = (err: Error): void => reject(new Error(`${what()}: ${err.message}`));
  const onClose = (): void => reject(new Error(`${what()}: connection closed early`));
  socket.once("error", onError);
  socket.once("close", onClose);
  socket.once("end", onClose);
  return () => {
    socket.off("error", onError);
    socket.off("close", onClose);
    socket.off("end", onClose);
  };
}

/** Send stream `(seed, size)` to the sink and check the digest it answers. */
export function upload(socket: Socket, seed: number, size: number): Promise<void> {
  const expected = patternDigest(seed, size);
  return new Promise((resolve, reject) => {
    const stream = new PatternStream(seed, size);
    let answer: Buffer = Buffer.alloc(0);
    const unwatch = watchBreak(socket, () => `upload of ${size} bytes, ${size - stream.left} sent`, reject);
    socket.on("data", (chunk: Buffer) => {
      answer = Buffer.concat([answer, chunk]);
      if (answer.length < DIGEST_SIZE) return;
      unwatch();
      const got = answer.subarray(0, DIGEST_SIZE).toString("hex");
      if (got !== expected)
        reject(new Error(`upload: the sink's SHA-256 ${got} is not the sender's ${expected}`));
      else resolve();
    });
    socket.resume();
    const pump = (): void => {
      for (let chunk = stream.next(); chunk !== null; chunk = stream.next()) {
        if (!socket.write(chunk)) {
          socket.once("drain", pump);
          return;
        }
      }
    };
    socket.write(sinkHeader(size));
    pump();
  });
}

/** Ask the source for stream `(seed, size)`, hash it as it arrives and check it. */
export function download(socket: Socket, seed: number, size: number): Promise<void> {
  const expected = patternDigest(seed, size);
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    let got = 0;
    const unwatch = watchBreak(socket, () => `download of ${size} bytes, ${got} received`, reject);
    socket.on("data", (chunk: Buffer) => {
      got += chunk.length;
      if (got > size) {
        unwatch();
        reject(new Error(`download: ${got} bytes arrived, ${size} were asked for`));
        return;
      }
      hash.update(chunk);
      if (got < size) return;
      unwatch();
      const digest = hash.digest("hex");
      if (digest !== expected)
        reject(new Error(`download: SHA-256 ${digest} is not the source's ${expected}`));
      else resolve();
    });
    socket.write(sourceHeader(seed, size));
    socket.resume();
  });
}

/** A reader held to `bytesPerSec`: it pauses the socket whenever it got ahead of the rate. */
export function throttledRead(
  socket: Socket,
  seed: number,
  size: number,
  bytesPerSec: number,
): {
  received(): number;
  elapsedMs(): number;
} {
  const t0 = performance.now();
  let got = 0;
  let timer: NodeJS.Timeout | null = null;
  socket.on("data", (chunk: Buffer) => {
    got += chunk.length;
    const ahead = got - ((performance.now() - t0) / 1000) * bytesPerSec;
    if (ahead > 0 && timer === null) {
      socket.pause();
      timer = setTimeout(
        () => {
          timer = null;
          socket.resume();
        },
        (ahead / bytesPerSec) * 1000,
      );
    }
  });
  socket.on("error", () => {});
  socket.on("close", () => {
    if (timer !== null) clearTimeout(timer);
  });
  socket.write(sourceHeader(seed, size));
  socket.resume();
  return { received: () => got, elapsedMs: () => performance.now() - t0 };
}
