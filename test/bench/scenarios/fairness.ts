/**
 * Fairness: eight streams from the source, one of them read at 100 KiB/s and seven at full
 * speed. The seven should keep the speed of the 8-stream figure (one slow reader must not stall
 * its neighbours), and the proxy's memory must stay bounded while the slow one backs up.
 */
import type { Socket } from "node:net";
import { type RunContext, routeOf, withDeadline } from "../context.js";
import { patternDigest } from "../data-pattern.js";
import { FAIRNESS_AGGREGATE, FAIRNESS_MAX_RSS, FAIRNESS_SLOW } from "../figures.js";
import type { Peer, PeerId } from "../peers/peer.js";
import { watchRss } from "../processes.js";
import { connectVia } from "../socks5-client.js";
import { MIB } from "../stats.js";
import { download, throttledRead } from "../transfer.js";

/** Peers the fairness figure covers: Underpass, and microsocks for reference. */
const FAIRNESS_PEERS: ReadonlySet<PeerId> = new Set([
  "microsocks",
  "underpass-ws",
  "underpass-wss",
  "baseline-ws",
  "baseline-wss",
]);
const STREAMS = 8;
/** The throttled reader's rate, in bytes/s. */
const SLOW_RATE = 100 * 1024;

async function fairnessOnce(ctx: RunContext, peer: Peer): Promise<void> {
  const source = routeOf(ctx, peer).source;
  const per = Math.floor(ctx.options.sizeBytes / STREAMS);
  for (let i = 1; i <= STREAMS; i++) patternDigest(i, per);
  const sockets: Socket[] = [];
  try {
    for (let i = 0; i < STREAMS; i++) sockets.push(await connectVia(peer.proxy, source));
    const rss = watchRss(() => peer.pids());
    const slow = throttledRead(sockets[0]!, 1, per, SLOW_RATE);
    const t0 = performance.now();
    await withDeadline(
      Promise.all(sockets.slice(1).map((s, i) => download(s, i + 2, per))),
      10_000 + (per * 7) / (MIB / 200),
      `${peer.id} fairness`,
    );
    const seconds = (performance.now() - t0) / 1000;
    const maxRss = rss.stop();
    const aggregate = (per * 7) / MIB / seconds;
    const slowRate = slow.received() / 1024 / (slow.elapsedMs() / 1000);
    ctx.book.record(FAIRNESS_AGGREGATE, peer.id, aggregate);
    ctx.book.record(FAIRNESS_SLOW, peer.id, slowRate);
    ctx.book.record(FAIRNESS_MAX_RSS, peer.id, maxRss / MIB);
    ctx.log(
      `fairness ${peer.id}: 7 streams ${aggregate.toFixed(0)} MiB/s, slow reader ${slowRate.toFixed(0)} KiB/s, ` +
        `max RSS ${(maxRss / MIB).toFixed(1)} MiB`,
    );
  } finally {
    for (const s of sockets) s.destroy();
  }
}

export async function runFairness(ctx: RunContext): Promise<void> {
  if (!ctx.options.figures.has(FAIRNESS_AGGREGATE.id)) return;
  for (let rep = 1; rep <= ctx.options.reps; rep++) {
    for (const peer of ctx.peers) {
      if (!FAIRNESS_PEERS.has(peer.id)) continue;
      try {
        await fairnessOnce(ctx, peer);
      } catch (err) {
        ctx.book.fail(FAIRNESS_AGGREGATE, peer.id, err);
        ctx.log(`fairness ${peer.id}: FAILED ${err instanceof Error ? err.message : err}`);
      }
    }
  }
}
