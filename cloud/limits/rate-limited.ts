/**
 * Lines about something a peer can repeat at will (a wrong password, a bound that bites) are
 * rate-limited: the first of a key is written at once, then at most one summary per period
 * with the count of the ones left out. A key with nothing left out in a period is forgotten.
 * Keys are bounded too: past `maxKeys` live ones, the rest share one overflow key.
 */

export interface RateLimitedOptions {
  /** Length of a period, in ms. */
  readonly periodMs: number;
  /** Distinct keys followed at once before new ones share `overflowKey`. */
  readonly maxKeys?: number;
}

interface KeyState {
  suppressed: number;
  readonly timer: NodeJS.Timeout;
}

/** Default bound on the keys followed at once. */
const DEFAULT_MAX_KEYS = 256;
/** The key of everything past `maxKeys`. */
export const OVERFLOW_KEY = "*";

export class RateLimited<K extends string = string> {
  readonly #periodMs: number;
  readonly #maxKeys: number;
  readonly #keys = new Map<string, KeyState>();
  readonly #summarize: (key: string, suppressed: number, periodMs: number) => void;
  #closed = false;

  /** `summarize` writes the line that stands for `suppressed` left-out ones of `key`. */
  constructor(
    options: RateLimitedOptions,
    summarize: (key: string, suppressed: number, periodMs: number) => void,
  ) {
    this.#periodMs = options.periodMs;
    this.#maxKeys = options.maxKeys ?? DEFAULT_MAX_KEYS;
    this.#summarize = summarize;
  }

  /** Write through `write` unless this key wrote within the period; true when it was written. */
  note(key: K, write: () => void): boolean {
    if (this.#closed) return false;
    const k = this.#keys.has(key) || this.#keys.size < this.#maxKeys ? key : OVERFLOW_KEY;
    const state = this.#keys.get(k);
    if (state) {
      state.suppressed++;
      return false;
    }
    const timer = setInterval(() => this.#tick(k), this.#periodMs);
    timer.unref();
    this.#keys.set(k, { suppressed: 0, timer });
    write();
    return true;
  }

  /** Write the summaries still owed and stop. */
  close(): void {
    this.#closed = true;
    for (const [k, state] of this.#keys) {
      clearInterval(state.timer);
      if (state.suppressed > 0) this.#summarize(k, state.suppressed, this.#periodMs);
    }
    this.#keys.clear();
  }

  #tick(k: string): void {
    const state = this.#keys.get(k);
    if (!state) return;
    if (state.suppressed === 0) {
      clearInterval(state.timer);
      this.#keys.delete(k);
      return;
    }
    const n = state.suppressed;
    state.suppressed = 0;
    this.#summarize(k, n, this.#periodMs);
  }
}
