/**
 * How many of something each key holds (connections of a source address, listeners of a
 * client), against a maximum per key. A key is kept only while it holds one or more, so the
 * table never outgrows what is held.
 */
export class KeyedCounter {
  readonly max: number;
  readonly #held = new Map<string, number>();

  constructor(max: number) {
    this.max = max;
  }

  /** Take one for `key`; false (nothing taken) when it already holds `max`. */
  tryAcquire(key: string): boolean {
    const n = this.#held.get(key) ?? 0;
    if (n >= this.max) return false;
    this.#held.set(key, n + 1);
    return true;
  }

  /** Give one back; a key that holds none is forgotten. */
  release(key: string): void {
    const n = this.#held.get(key) ?? 0;
    if (n <= 1) this.#held.delete(key);
    else this.#held.set(key, n - 1);
  }

  count(key: string): number {
    return this.#held.get(key) ?? 0;
  }

  /** Keys holding one or more. */
  get keys(): number {
    return this.#held.size;
  }
}
