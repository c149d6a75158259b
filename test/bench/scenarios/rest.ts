/**
 * Memory at rest and after a load: each Underpass peer is started afresh from the CLI, and once
 * its first tunnel is up and it settled, the relay's and the agent's RSS are read (VmRSS). Then a
 * load (8 streams premises→cloud, `--size` bytes) runs, and the summed RSS is sampled every
 * 500 ms for 30 s: how far above rest it peaked, and where it was when it came back within
 * RECOVERED_MIB of rest (or after 30 s, when it did not).
 */
import { setTimeout as delay } from "node:timers/promises";
import type { RunContext } from "../context.js";
import { REST_FIGURES } from "../figures.js";
import type { PeerId } from "../peers/peer.js";
import { rssBytes, totalRss, watchRss } from "../processes.js";
import { MIB } from "../stats.js";
import { measureTransfer } from "./throughput.js";

/** Peers whose processes start from the CLI: relay and agent. */
const REST_PEERS: ReadonlySet<PeerId> = new Set([
  "underpass-ws",
  "underpass-wss",
  "baseline-ws",
  "baseline-wss",
]);
/** Let a fresh process finish its start-up (lazy compilation, first GCs) before reading, in ms. */
const SETTLE_MS = 3_000;
/** How long RSS may take to come back after a load, in ms. */
const RECOVERY_MS = 30_000;
const SAMPLE_MS = 500;
/** Within this much of rest counts as back, in MiB. */
export const RECOVERED_MIB = 32;

export async function runRest(ctx: RunContext): Promise<void> {
  if (!ctx.options.figures.has("rest")) return;
  for (let rep = 1; rep <= ctx.options.reps; rep++) {
    for (const running of ctx.peers) {
      if (!REST_PEERS.has(running.id)) continue;
      const id = running.id;
      try {
        const { peer, route } = await ctx.launch(id);
        try {
          await delay(SETTLE_MS);
          const [relayPid, agentPid] = peer.pids() as [number, number];
          const relay = rssBytes(relayPid);
          const agent = rssBytes(agentPid);
          ctx.book.record(REST_FIGURES.relay, id, relay / MIB);
          ctx.book.record(REST_FIGURES.agent, id, agent / MIB);
          const rest = relay + agent;
          const watch = watchRss(() => peer.pids());
          await measureTransfer(peer, route, "p2c", 8, ctx.options.sizeBytes);
          const peak = watch.stop();
          const t0 = performance.now();
          let now = totalRss(peer.pids());
          while (now - rest > RECOVERED_MIB * MIB && performance.now() - t0 < RECOVERY_MS) {
            await delay(SAMPLE_MS);
            now = totalRss(peer.pids());
          }
          const seconds = (performance.now() - t0) / 1000;
          ctx.book.record(REST_FIGURES.loadPeak, id, (peak - rest) / MIB);
          ctx.book.record(REST_FIGURES.afterLoad, id, (now - rest) / MIB);
          ctx.book.record(REST_FIGURES.recovery, id, seconds);
          ctx.log(
            `rest rep ${rep} ${id}: relay ${(relay / MIB).toFixed(1)} MiB, agent ${(agent / MIB).toFixed(1)} MiB; ` +
              `load peak +${((peak - rest) / MIB).toFixed(1)} MiB, +${((now - rest) / MIB).toFixed(1)} MiB after ${seconds.toFixed(1)} s`,
          );
        } finally {
          await peer.stop();
        }
      } catch (err) {
        ctx.book.fail(REST_FIGURES.agent, id, err);
        ctx.log(`rest rep ${rep} ${id}: FAILED ${err instanceof Error ? err.message : err}`);
      }
    }
  }
}
