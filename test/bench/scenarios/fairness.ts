/**
 * Fairness: eight streams from the source, one of them read at 100 KiB/s and seven at full
 * speed. The seven should keep the speed of the 8-stream figure (one slow reader must not stall
 * its neighbours), and the proxy's memory must stay bounded while the slow one backs up. Each
 * repetition runs on a fresh instance of the peer, settled after its start: the RSS before the
 * load is the RSS at rest, not what earlier figures left behind.
 */
import type { Socket } from "node:net";
import { setTimeout as delay } from "node:timers/promises";
import { type RunContext, type TargetRoute, withDeadline } from "../context.js";
import { patternDigest } from "../data-pattern.js";
import { FAIRNESS_AGGREGATE, FAIRNESS_MAX_RSS, FAIRNESS_RSS_GROWTH, FAIRNESS_SLOW } from "../figures.js";
import type { Peer, PeerId } from "../peers/peer.js";
import { totalRss, watchRss } from "../processes.js";
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
/** A fresh instance settles (start-up compilation, first GCs) before its RSS is read, in ms. */
const SETTLE_MS = 3_000;

async function fairnessOnce(ctx: RunContext, peer: Peer, route: TargetRoute): Promise<void> {
  const source = route.source;
  const per = Math.floor(ctx.options.sizeBytes / STREAMS);
  for (let i = 1; i <= STREAMS; i++) patternDigest(i, per);
  const sockets: Socket[] = [];
  try {
    for (let i = 0; i < STREAMS; i++) sockets.push(await connectVia(peer.proxy, source));
    const before = totalRss(peer.pids());
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
    ctx.book.record(FAIRNESS_RSS_GROWTH, peer.id, (maxRss - before) / MIB);
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
        const fresh = await ctx.launch(peer.id);
        try {
          await delay(SETTLE_MS);
          await fairnessOnce(ctx, fresh.peer, fresh.route);
        } finally {
          await fresh.peer.stop();
        }
      } catch (err) {
        ctx.book.fail(FAIRNESS_AGGREGATE, peer.id, err);
        ctx.log(`fairness ${peer.id}: FAILED ${err instanceof Error ? err.message : err}`);
      }
    }
  }
}
