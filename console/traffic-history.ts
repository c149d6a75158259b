/**
 * The last 15 minutes of traffic, from the live `traffic` samples (one every 2 s per relay),
 * kept in the page from the moment it signed in: what the overview's chart draws. Bounded: a
 * sample older than the window goes.
 */
import type { LiveEvents } from "./api/live.js";
import type { TrafficData } from "./api/types.js";

/** The window the chart shows, in ms. */
export const HISTORY_MS = 15 * 60 * 1000;
/** Samples kept at most: the window at one sample a second (the relay sends one every 2 s). */
const MAX_SAMPLES = HISTORY_MS / 1000;

export interface TrafficSample {
  /** ms since the epoch. */
  readonly at: number;
  /** Bytes per second, summed over locations. */
  readonly upBps: number;
  readonly downBps: number;
  readonly connections: number;
  readonly locations: TrafficData["locations"];
}

export class TrafficHistory {
  readonly #samples: TrafficSample[] = [];
  readonly #listeners = new Set<() => void>();
  readonly #stop: () => void;

  constructor(live: LiveEvents) {
    this.#stop = live.on("traffic", (t) => this.add(t));
  }

  add(t: TrafficData): void {
    let upBps = 0;
    let downBps = 0;
    let connections = 0;
    for (const l of Object.values(t.locations)) {
      upBps += l.upBps;
      downBps += l.downBps;
      connections += l.connections;
    }
    const at = Date.parse(t.at);
    this.#samples.push({
      at: Number.isNaN(at) ? Date.now() : at,
      upBps,
      downBps,
      connections,
      locations: t.locations,
    });
    const oldest = Date.now() - HISTORY_MS;
    while (
      this.#samples.length > MAX_SAMPLES ||
      (this.#samples[0] !== undefined && this.#samples[0].at < oldest)
    ) {
      this.#samples.shift();
    }
    for (const fn of this.#listeners) fn();
  }

  get samples(): readonly TrafficSample[] {
    return this.#samples;
  }

  get latest(): TrafficSample | undefined {
    return this.#samples[this.#samples.length - 1];
  }

  /** Calls `fn` after each new sample; returns the function that stops it. */
  onChange(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  close(): void {
    this.#stop();
    this.#listeners.clear();
  }
}
