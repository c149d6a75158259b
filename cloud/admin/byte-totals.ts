/**
 * Bytes carried, per key (one key for the relay's total, or a location label): those of closed
 * connections, counted once at their close, plus what the live ones carried so far, read when
 * the metrics are scraped. Nothing is counted per chunk.
 *
 * A connection cut off by the admin API leaves the live list a moment before its close is
 * counted; a total never goes down meanwhile (Prometheus would take a drop for a reset).
 */

/** Bytes each way: up from the client towards the premises, down back to it. */
export interface ByteCount {
  up: number;
  down: number;
}

export class ByteTotals {
  readonly #closed = new Map<string, ByteCount>();
  /** The highest totals shown so far. */
  readonly #shown = new Map<string, ByteCount>();

  closed(key: string, up: number, down: number): void {
    add(this.#closed, key, up, down);
  }

  /** Every key's total, given the live connections' bytes by the same keys. */
  totals(live: ReadonlyMap<string, ByteCount>): ReadonlyMap<string, ByteCount> {
    for (const key of new Set([...this.#closed.keys(), ...live.keys()])) {
      const closed = this.#closed.get(key);
      const now = live.get(key);
      const up = (closed?.up ?? 0) + (now?.up ?? 0);
      const down = (closed?.down ?? 0) + (now?.down ?? 0);
      const shown = this.#shown.get(key);
      if (shown) {
        shown.up = Math.max(shown.up, up);
        shown.down = Math.max(shown.down, down);
      } else {
        this.#shown.set(key, { up, down });
      }
    }
    return this.#shown;
  }
}

/** Adds `up` and `down` to `key`'s count in `counts`. */
export function add(counts: Map<string, ByteCount>, key: string, up: number, down: number): void {
  const c = counts.get(key);
  if (c) {
    c.up += up;
    c.down += down;
  } else {
    counts.set(key, { up, down });
  }
}
