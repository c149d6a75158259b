/**
 * Scale: hold many idle streams open at once through a proxy, then make each echo once. The
 * proxy's processes' RSS is read before and while the streams are held; failures are counted,
 * not fatal. Connections are closed with a reset so thousands of them leave no TIME_WAIT.
 */
import type { Socket } from "node:net";
import { setTimeout as delay } from "node:timers/promises";
import { DEFAULT_LIMITS } from "../../../shared/tunnel/constants.js";
import type { RunContext, TargetRoute } from "../context.js";
import { scaleFigures } from "../figures.js";
import type { Peer, PeerId } from "../peers/peer.js";
import { totalRss } from "../processes.js";
import { connectVia } from "../socks5-client.js";
import { MIB } from "../stats.js";
import { echoOnce } from "./latency.js";

/** Peers the scale figure covers: Underpass, and microsocks for reference. */
const SCALE_PEERS: ReadonlySet<PeerId> = new Set([
  "microsocks",
  "underpass-ws",
  "underpass-wss",
  "baseline-ws",
  "baseline-wss",
]);
/** SOCKS handshakes in flight at once while opening. */
const OPEN_CONCURRENCY = 128;
/** Let the proxies settle (GC, lazily freed buffers) before RSS is read, in ms. */
const SETTLE_MS = 1_000;

async function openMany(
  peer: Peer,
  route: TargetRoute,
  count: number,
): Promise<{ sockets: Socket[]; errors: number; firstError: string | null }> {
  const echo = route.echo;
  const sockets: Socket[] = [];
  let errors = 0;
  let firstError: string | null = null;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++;
      try {
        const s = await connectVia(peer.proxy, echo, 60_000);
        s.on("error", () => {});
        sockets.push(s);
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
    }
  };
  await Promise.all(Array.from({ length: OPEN_CONCURRENCY }, worker));
  return { sockets, errors, firstError };
}

async function echoAll(sockets: readonly Socket[]): Promise<{ errors: number; firstError: string | null }> {
  let errors = 0;
  let firstError: string | null = null;
  await Promise.all(
    sockets.map(async (s) => {
      try {
        await echoOnce(s);
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
    }),
  );
  return { errors, firstError };
}

/** One step on a fresh instance of the peer, so that "before" is a clean baseline. */
export async function scaleStep(
  ctx: RunContext,
  peer: Peer,
  route: TargetRoute,
  count: number,
): Promise<void> {
  const f = scaleFigures(count);
  const pids = peer.pids();
  const before = totalRss(pids);
  const t0 = performance.now();
  const opened = await openMany(peer, route, count);
  const openSeconds = (performance.now() - t0) / 1000;
  try {
    await delay(SETTLE_MS);
    const held = totalRss(pids);
    const echoed = await echoAll(opened.sockets);
    await delay(SETTLE_MS);
    const heldAfterEcho = totalRss(pids);
    const peak = Math.max(held, heldAfterEcho);
    ctx.book.record(f.openErrors, peer.id, opened.errors);
    ctx.book.record(f.echoErrors, peer.id, echoed.errors);
    ctx.book.record(f.rssBefore, peer.id, before / MIB);
    ctx.book.record(f.rssHeld, peer.id, peak / MIB);
    ctx.book.record(f.perThousand, peer.id, (peak - before) / MIB / (count / 1000));
    ctx.book.record(f.openRate, peer.id, opened.sockets.length / openSeconds);
    const why = [opened.firstError, echoed.firstError].filter(Boolean).join("; ");
    if (why) ctx.book.fail(f.openErrors, peer.id, why);
    ctx.log(
      `scale ${count} ${peer.id}: ${opened.sockets.length} held (${opened.errors} open errors, ` +
        `${echoed.errors} echo errors), RSS ${(before / MIB).toFixed(1)} → ${(peak / MIB).toFixed(1)} MiB` +
        `${why ? ` — ${why}` : ""}`,
    );
  } finally {
    for (const s of opened.sockets) s.resetAndDestroy();
    await delay(SETTLE_MS);
  }
}

/**
 * The relay's bounds for `count` held streams of one client from one address: every stream
 * counts its initial window (what its agent may send at once) in the buffer budget, whose
 * defaults (64 MiB per client, 256 MiB in all) admit 256 streams of one client, and the
 * connections per client and per source stop at 4 096 and 8 192. The scale figure holds them
 * all and measures what they really cost.
 */
function scaleBounds(count: number): Record<string, string> {
  const bytes = String(Math.max(256 * 1024 * 1024, 2 * count * DEFAULT_LIMITS.initialWindow));
  const connections = String(Math.max(8192, 2 * count));
  return {
    UNDERPASS_BUFFER_BUDGET_BYTES: bytes,
    UNDERPASS_CLIENT_BUFFER_BYTES: bytes,
    UNDERPASS_SOCKS_CONNECTIONS_PER_CLIENT: connections,
    UNDERPASS_SOCKS_CONNECTIONS_PER_SOURCE: connections,
  };
}

export async function runScale(ctx: RunContext): Promise<void> {
  if (!ctx.options.figures.has("scale")) return;
  for (const count of ctx.options.scaleCounts) {
    for (let rep = 1; rep <= ctx.options.reps; rep++) {
      for (const peer of ctx.peers) {
        if (!SCALE_PEERS.has(peer.id)) continue;
        try {
          const fresh = await ctx.launch(peer.id, undefined, scaleBounds(count));
          try {
            await scaleStep(ctx, fresh.peer, fresh.route, count);
          } finally {
            await fresh.peer.stop();
          }
        } catch (err) {
          ctx.book.fail(scaleFigures(count).openErrors, peer.id, err);
          ctx.log(`scale ${count} ${peer.id}: FAILED ${err instanceof Error ? err.message : err}`);
        }
      }
    }
  }
}
