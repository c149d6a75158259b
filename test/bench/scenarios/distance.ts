/**
 * Distance: the throughput figures again with a delay link (delay-link.ts) of each RTT on the
 * tunnel hop only, agent ↔ relay; the client ↔ relay and agent ↔ target hops stay on loopback,
 * as in a deployment where the relay sits in the cloud next to its clients and the agent next to
 * its targets. The ceiling is one plain TCP stream through the same kind of link to the target
 * (the direct peer): a tunnel is one TCP connection, so neither one stream nor eight inside it can
 * beat one TCP stream over the same link. What is measured is how much of it the per-stream
 * windows (and their tuning) leave unused.
 */
import type { RunContext, TargetRoute } from "../context.js";
import { type DelayLink, startDelayLink } from "../delay-link.js";
import { distanceFigure, STREAM_COUNTS } from "../figures.js";
import type { Peer, PeerId } from "../peers/peer.js";
import { TARGET_PORT } from "../target-protocol.js";
import { measureTransfer } from "./throughput.js";

/** Peers of the distance figures: the ceiling and the tunnels. */
const DISTANCE_PEERS: ReadonlySet<PeerId> = new Set([
  "direct",
  "underpass-ws",
  "underpass-wss",
  "baseline-ws",
  "baseline-wss",
]);

interface Lane {
  readonly peer: Peer;
  readonly route: TargetRoute;
  close(): Promise<void>;
}

/** The direct peer through one delay link per target port. */
async function directThroughLinks(peer: Peer, targetBase: number, rttMs: number): Promise<Lane> {
  const links: DelayLink[] = [];
  try {
    const via = async (offset: number): Promise<{ host: string; port: number }> => {
      const link = await startDelayLink({ target: { host: "127.0.0.1", port: targetBase + offset }, rttMs });
      links.push(link);
      return { host: "127.0.0.1", port: link.port };
    };
    const route: TargetRoute = {
      sink: await via(TARGET_PORT.SINK),
      source: await via(TARGET_PORT.SOURCE),
      echo: await via(TARGET_PORT.ECHO),
    };
    return { peer, route, close: async () => void (await Promise.all(links.map((l) => l.close()))) };
  } catch (err) {
    await Promise.all(links.map((l) => l.close()));
    throw err;
  }
}

async function lanesFor(ctx: RunContext, targetBase: number, rttMs: number): Promise<Lane[]> {
  const lanes: Lane[] = [];
  for (const peer of ctx.peers) {
    if (!DISTANCE_PEERS.has(peer.id)) continue;
    try {
      if (peer.id === "direct") {
        lanes.push(await directThroughLinks(peer, targetBase, rttMs));
      } else {
        const fresh = await ctx.launch(peer.id, rttMs);
        lanes.push({ peer: fresh.peer, route: fresh.route, close: () => fresh.peer.stop() });
      }
    } catch (err) {
      ctx.book.fail(distanceFigure(rttMs, "c2p", 1), peer.id, err);
      ctx.log(`distance ${rttMs} ms ${peer.id}: FAILED to start ${err instanceof Error ? err.message : err}`);
    }
  }
  return lanes;
}

export async function runDistance(ctx: RunContext, targetBase: number): Promise<void> {
  const { options } = ctx;
  if (!options.figures.has("distance")) return;
  for (const rttMs of options.distanceRtts) {
    const lanes = await lanesFor(ctx, targetBase, rttMs);
    try {
      for (let rep = 1; rep <= options.reps; rep++) {
        for (const direction of ["c2p", "p2c"] as const) {
          for (const streams of STREAM_COUNTS) {
            const figure = distanceFigure(rttMs, direction, streams);
            for (const { peer, route } of lanes) {
              // the ceiling is one TCP stream; eight of them would be eight connections, not one
              if (peer.id === "direct" && streams !== 1) continue;
              try {
                // under its deadline (5 MiB/s): a stalled window fails the figure
                const r = await measureTransfer(peer, route, direction, streams, options.distanceBytes);
                ctx.book.record(figure, peer.id, r.mibs);
                ctx.log(`${figure.id} rep ${rep} ${peer.id}: ${r.mibs.toFixed(0)} MiB/s`);
              } catch (err) {
                ctx.book.fail(figure, peer.id, err);
                ctx.log(
                  `${figure.id} rep ${rep} ${peer.id}: FAILED ${err instanceof Error ? err.message : err}`,
                );
              }
            }
          }
        }
      }
    } finally {
      for (const lane of lanes) await lane.close().catch(() => {});
    }
  }
}
