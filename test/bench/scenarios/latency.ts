/**
 * Latency: rounds of TCP connect to the proxy, SOCKS5 handshake (with username/password where
 * the peer takes them), a 1-byte echo from the target and close, one after another. Each
 * repetition gives a p50 and a p99 over its rounds. Then a burst: BURST.connections such rounds,
 * BURST.parallel at a time, as a rate. The rounds also give each step's p50 (LATENCY_STEPS):
 * which answer of the exchange a peer is slow to give.
 */
import type { Socket } from "node:net";
import { type RunContext, routeOf, withDeadline } from "../context.js";
import { BURST, CONNECT_BURST, LATENCY_P50, LATENCY_P99, LATENCY_STEPS } from "../figures.js";
import type { Peer } from "../peers/peer.js";
import { type ConnectMark, connectVia, type Destination } from "../socks5-client.js";
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

/** When each moment of a round came, in ms since its start. */
type Moments = Partial<Record<ConnectMark | "echo", number>>;

/** One round; its total time, and its moments into `moments` when given. */
async function round(peer: Peer, echo: Destination, moments?: Moments): Promise<number> {
  const t0 = performance.now();
  const mark = moments ? (m: ConnectMark): void => void (moments[m] = performance.now() - t0) : undefined;
  const socket = await connectVia(peer.proxy, echo, 10_000, mark);
  try {
    await echoOnce(socket);
  } finally {
    socket.destroy();
  }
  const total = performance.now() - t0;
  if (moments) moments.echo = total;
  return total;
}

type Step = (typeof LATENCY_STEPS)[number];

/** The p50 of each step every round went through (direct: the connect and the echo). */
function stepMedians(rounds: readonly Moments[]): Array<{ step: Step; p50: number }> {
  const spans = LATENCY_STEPS.map(() => [] as number[]);
  for (const m of rounds) {
    let before = 0;
    for (const [i, step] of LATENCY_STEPS.entries()) {
      const at = m[step.mark];
      if (at === undefined) continue;
      spans[i]!.push(at - before);
      before = at;
    }
  }
  return LATENCY_STEPS.flatMap((step, i) => {
    const v = spans[i]!.sort((x, y) => x - y);
    return v.length > 0 && v.length === rounds.length ? [{ step, p50: quantile(v, 0.5) }] : [];
  });
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
  ctx.book.declare([LATENCY_P50, LATENCY_P99, CONNECT_BURST, ...LATENCY_STEPS.map((s) => s.figure)]);
  for (let rep = 1; rep <= ctx.options.reps; rep++) {
    for (const peer of ctx.peers) {
      const echo = routeOf(ctx, peer).echo;
      try {
        const times: number[] = [];
        const moments: Moments[] = [];
        await withDeadline(
          (async () => {
            for (let i = 0; i < ctx.options.latencyRounds; i++) {
              const m: Moments = {};
              times.push(await round(peer, echo, m));
              moments.push(m);
            }
          })(),
          120_000,
          `${peer.id} latency`,
        );
        times.sort((a, b) => a - b);
        const p50 = quantile(times, 0.5);
        const p99 = quantile(times, 0.99);
        ctx.book.record(LATENCY_P50, peer.id, p50);
        ctx.book.record(LATENCY_P99, peer.id, p99);
        const steps = stepMedians(moments);
        for (const { step, p50 } of steps) ctx.book.record(step.figure, peer.id, p50);
        const rate = await withDeadline(burst(peer, echo), 120_000, `${peer.id} burst`);
        ctx.book.record(CONNECT_BURST, peer.id, rate);
        ctx.log(
          `latency rep ${rep} ${peer.id}: p50 ${p50.toFixed(3)} ms, p99 ${p99.toFixed(3)} ms, ` +
            `burst ${rate.toFixed(0)} conn/s; steps p50 ${steps.map((s) => `${s.step.name} ${s.p50.toFixed(3)}`).join(", ")}`,
        );
      } catch (err) {
        ctx.book.fail(LATENCY_P50, peer.id, err);
        ctx.log(`latency rep ${rep} ${peer.id}: FAILED ${err instanceof Error ? err.message : err}`);
      }
    }
  }
}
