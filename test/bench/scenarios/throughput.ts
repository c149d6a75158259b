/**
 * Throughput: `size` bytes in total over 1 or 8 parallel streams, each way. Connections are
 * set up before the clock starts; the clock stops when the last receiver has checked its
 * SHA-256. Repetitions go round the peers, so noise from the machine hits every peer alike.
 */
import type { Socket } from "node:net";
import { type RunContext, routeOf, type TargetRoute, withDeadline } from "../context.js";
import { patternDigest } from "../data-pattern.js";
import { cpuFigure, STREAM_COUNTS, type TransferDirection, throughputFigure } from "../figures.js";
import type { Peer } from "../peers/peer.js";
import { cpuSeconds } from "../processes.js";
import { connectVia } from "../socks5-client.js";
import { GIB, MIB } from "../stats.js";
import { download, upload } from "../transfer.js";

/** Slowest rate before a transfer counts as stuck, in bytes/s. */
const STUCK_RATE = 5 * MIB;

/** One transfer of `totalBytes` over `streams` connections: MiB/s, and the proxy's CPU s per GiB. */
export async function measureTransfer(
  peer: Peer,
  route: TargetRoute,
  direction: TransferDirection,
  streams: number,
  totalBytes: number,
): Promise<{ mibs: number; cpuPerGib: number }> {
  const per = Math.floor(totalBytes / streams);
  // stream i carries pattern i + 1 in both directions
  for (let i = 0; i < streams; i++) patternDigest(i + 1, per);
  const dest = direction === "c2p" ? route.sink : route.source;
  const sockets: Socket[] = [];
  try {
    for (let i = 0; i < streams; i++) sockets.push(await connectVia(peer.proxy, dest));
    const pids = peer.pids();
    const cpu0 = cpuSeconds(pids);
    const t0 = performance.now();
    const move = direction === "c2p" ? upload : download;
    await withDeadline(
      Promise.all(sockets.map((s, i) => move(s, i + 1, per))),
      10_000 + (per * streams * 1000) / STUCK_RATE,
      `${peer.id} ${direction} x${streams}`,
    );
    const seconds = (performance.now() - t0) / 1000;
    const moved = per * streams;
    return { mibs: moved / MIB / seconds, cpuPerGib: (cpuSeconds(pids) - cpu0) / (moved / GIB) };
  } finally {
    for (const s of sockets) s.destroy();
  }
}

export async function runThroughput(ctx: RunContext): Promise<void> {
  const { options } = ctx;
  for (const direction of ["c2p", "p2c"] as const) {
    for (const streams of STREAM_COUNTS) {
      const figure = throughputFigure(direction, streams);
      const cpu = cpuFigure(direction, streams);
      if (!options.figures.has(figure.id)) continue;
      for (let rep = 1; rep <= options.reps; rep++) {
        for (const peer of ctx.peers) {
          try {
            const r = await measureTransfer(peer, routeOf(ctx, peer), direction, streams, options.sizeBytes);
            ctx.book.record(figure, peer.id, r.mibs);
            if (peer.proxy !== null) ctx.book.record(cpu, peer.id, r.cpuPerGib);
            ctx.log(
              `${figure.id} rep ${rep} ${peer.id}: ${r.mibs.toFixed(0)} MiB/s` +
                (peer.proxy === null ? "" : `, proxy CPU ${r.cpuPerGib.toFixed(2)} s/GiB`),
            );
          } catch (err) {
            ctx.book.fail(figure, peer.id, err);
            ctx.log(`${figure.id} rep ${rep} ${peer.id}: FAILED ${err instanceof Error ? err.message : err}`);
          }
        }
      }
    }
  }
}
