/**
 * V8 heap tuning for a process that carries tunnel traffic: `underpass cloud`, `agent` and
 * `demo` apply it at start. The flags are process-wide, so the library never sets them: a
 * program that embeds the relay or the agent decides for itself.
 *
 * Why: every socket read hands Node a fresh 64 KiB buffer outside the JS heap, so a tunnel
 * moving hundreds of MiB/s triggers a young-generation GC every ~32 MiB received (V8 collects
 * when young external memory reaches twice its largest semi-space). After each young GC V8
 * starts a full mark-compact when the old generation's headroom is below the new space's
 * capacity; with its default growing factor (about 2 under a high allocation rate) a relay with
 * ~15 MiB of live heap sits right there, and paid a mark-compact after nearly every young GC:
 * 35 per GiB, 30 % of its CPU. A growing factor of 4 (V8's own maximum) leaves headroom above
 * any new-space capacity for every heap past V8's incremental-marking threshold, and the
 * mark-compacts stop.
 *
 * The new space keeps the size start-up gave it: a burst of connections (each leaving a few
 * KiB that survive) no longer doubles it, which cost the relay 16 MiB of RSS for good. The
 * data path's young garbage is small; its external buffers trigger young GCs by themselves.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { Logger } from "../shared/logger.js";
import { MemoryReducer } from "./memory-reducer.js";

/** Old generation grows to 1 + this/100 times its live size before a mark-compact. */
const HEAP_GROWING_PERCENT = 300;
/** The new space grows by this factor when V8 grows it; 1 keeps it as it is. */
const SEMI_SPACE_GROWTH_FACTOR = 1;

let tuned = false;

/**
 * Applies the tuning once per process. Both flags are read each time V8 computes its limits
 * or grows the new space, so setting them after start-up takes effect at the next GC. A flag
 * given on the command line (NODE_OPTIONS, node --heap-growing-percent=...) wins.
 */
export function tuneHeapForTunnelTraffic(): void {
  if (tuned) return;
  tuned = true;
  const given = [...process.execArgv, ...(process.env["NODE_OPTIONS"]?.split(/\s+/) ?? [])].map((a) =>
    a.replaceAll("_", "-"),
  );
  const unlessGiven = (flag: string, value: number): void => {
    if (!given.some((a) => a.startsWith(flag))) setFlagsFromString(`${flag}=${value}`);
  };
  unlessGiven("--heap-growing-percent", HEAP_GROWING_PERCENT);
  unlessGiven("--semi-space-growth-factor", SEMI_SPACE_GROWTH_FACTOR);
}

/** How often the memory reducer samples the array buffer bytes, in ms. */
const MEMORY_REDUCER_INTERVAL_MS = 1_000;

let reducing = false;

/**
 * Starts the memory reducer (memory-reducer.ts) once per process: a sample a second on an
 * unref'd timer, and a full GC when a burst of traffic is over. The GC function comes from V8's
 * `--expose-gc`, set here before a fresh context exposes it (as the `expose-gc` package does):
 * the process's own global object does not get it, so nothing else sees a `gc`.
 */
export function startMemoryReducer(log: Logger): void {
  if (reducing) return;
  reducing = true;
  const collect = exposedGc();
  if (collect === null) {
    log.warn("V8 does not expose its garbage collector: memory after a burst of traffic waits for V8");
    return;
  }
  const reducer = new MemoryReducer(process.memoryUsage().arrayBuffers);
  // V8 frees the dead array buffers on a background thread after the GC returns (measured: a
  // read right after gc() still counted 43 of 67 MB), so what it left is read again at the next
  // sample; the lower of the two, since traffic that started meanwhile is not what it left
  let collection: { readonly before: number; readonly right: number; readonly gcMs: number } | null = null;
  const timer = setInterval(() => {
    const arrayBuffers = process.memoryUsage().arrayBuffers;
    if (collection !== null) {
      const after = Math.min(collection.right, arrayBuffers);
      reducer.collected(after);
      log.debug(
        { arrayBuffersBefore: collection.before, arrayBuffersAfter: after, gcMs: collection.gcMs },
        "traffic went quiet: collected the buffers it left",
      );
      collection = null;
      return;
    }
    if (!reducer.sample(arrayBuffers)) return;
    const t0 = performance.now();
    collect();
    const gcMs = Math.round(performance.now() - t0);
    collection = { before: arrayBuffers, right: process.memoryUsage().arrayBuffers, gcMs };
  }, MEMORY_REDUCER_INTERVAL_MS);
  timer.unref();
}

/** V8's full GC, exposed to a fresh context only; null when the flag does not take. */
function exposedGc(): (() => void) | null {
  setFlagsFromString("--expose-gc");
  try {
    const gc: unknown = runInNewContext("gc");
    return typeof gc === "function" ? (gc as () => void) : null;
  } catch {
    return null; // a ReferenceError: no `gc` in the new context
  }
}
