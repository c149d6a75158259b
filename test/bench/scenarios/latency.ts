/**
 * Latency: rounds of TCP connect to the proxy, SOCKS5 handshake (with username/password where
 * the peer takes them), a 1-byte echo from the target and close, one after another. Each
 * repetition gives a p50 and a p99 over its rounds. Then a burst: BURST.connections such rounds,
 * BURST.parallel at a time, as a rate.
 */
import type { Socket } from "node:net";
import { type RunContext, routeOf, withDeadline } from "../context.js";
import { BURST, CONNECT_BURST, LATENCY_P50, LATENCY_P99 } from "../figures.js";
import type { Peer } from "../peers/peer.js";
import { connectVia, type Destination } from "../socks5-client.js";
import { quantile } from "../stats.js";

const PROBE = Buffer.from([0x2a]);

/** Write one byte and wait for it to come back. */
export function echoOnce(socket: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    const onData = (): void => {
      socket.off("error", onError);
      socket.off("close", onClose);
      socket.off("data", onData);
      resolve();
    };
    const onError = (err: Error): void => reject(err);
    const onClose = (): void => reject(new Error("closed before the echo came back"));
    socket.on("data", onData);
    socket.once("error", onError);
    socket.once("close", onClose);
    socket.resume();
    socket.write(PROBE);
  });
}

async function round(peer: Peer, echo: Destination): Promise<number> {
  const t0 = performance.now();
  const socket = await connectVia(peer.proxy, echo, 10_000);
  try {
    await echoOnce(socket);
  } finally {
    socket.destroy();
  }
  return performance.now() - t0;
}

/** The burst's rate, in connections/s. */
async function burst(peer: Peer, echo: Destination): Promise<number> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < BURST.connections) {
      next++;
      await round(peer, echo);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: BURST.parallel }, worker));
  return BURST.connections / ((performance.now() - t0) / 1000);
}

export async function runLatency(ctx: RunContext): Promise<void> {
  if (!ctx.options.figures.has(LATENCY_P50.id)) return;
  for (let rep = 1; rep <= ctx.options.reps; rep++) {
    for (const peer of ctx.peers) {
      const echo = routeOf(ctx, peer).echo;
      try {
        const times: number[] = [];
        await withDeadline(
          (async () => {
            for (let i = 0; i < ctx.options.latencyRounds; i++) times.push(await round(peer, echo));
          })(),
          120_000,
          `${peer.id} latency`,
        );
        times.sort((a, b) => a - b);
        const p50 = quantile(times, 0.5);
        const p99 = quantile(times, 0.99);
        ctx.book.record(LATENCY_P50, peer.id, p50);
        ctx.book.record(LATENCY_P99, peer.id, p99);
        const rate = await withDeadline(burst(peer, echo), 120_000, `${peer.id} burst`);
        ctx.book.record(CONNECT_BURST, peer.id, rate);
        ctx.log(
          `latency rep ${rep} ${peer.id}: p50 ${p50.toFixed(3)} ms, p99 ${p99.toFixed(3)} ms, ` +
            `burst ${rate.toFixed(0)} conn/s`,
        );
      } catch (err) {
        ctx.book.fail(LATENCY_P50, peer.id, err);
        ctx.log(`latency rep ${rep} ${peer.id}: FAILED ${err instanceof Error ? err.message : err}`);
      }
    }
  }
}
