/**
 * Gives back the memory a burst of traffic leaves behind, once the burst is over.
 *
 * Every socket read hands Node a fresh buffer outside the JS heap (malloc'd, in glibc's main
 * heap). A buffer still queued for a write when a young GC runs survives it, is promoted, and is
 * freed only by the next mark-compact; with the heap tuning of heap-tuning.ts V8 starts one only
 * when external memory has grown by its soft limit (64 MiB) or the old generation has grown
 * fourfold. So a relay or an agent that moved a few GiB and then went quiet held, measured with
 * the bench's rest figure: 24-56 MiB of dead buffers each (process.memoryUsage().arrayBuffers),
 * relay + agent still 59-80 MiB above rest 30 s later, since no allocation came to start a GC
 * (V8's own memory reducer starts only after a mark-compact). One full GC then freed the buffers
 * and took glibc's heap back from 40 MiB to 6 MiB.
 *
 * The reducer reads the bytes of Node's array buffers once per interval (process.memoryUsage();
 * V8's own `external_memory` statistic kept counting promoted buffers a full GC had freed, 64 MiB
 * of them in the test). When they stand at least `growthBytes` above where the last collection
 * left them and moved less than `quietBytes` over `quietSamples` intervals in a row (the burst is
 * over; a trickle is quiet enough), it runs one full GC. While traffic flows it does nothing:
 * the collector's own heuristics keep that cost where heap-tuning.ts put it.
 */

/** When a quiet process is worth a full GC; sizes in bytes. */
export interface MemoryReducerOptions {
  /** Array buffer bytes above the level the last collection left that are worth collecting. */
  readonly growthBytes: number;
  /** Change between two samples below which the process counts as quiet. */
  readonly quietBytes: number;
  /** Quiet samples in a row before collecting. */
  readonly quietSamples: number;
}

export const DEFAULT_MEMORY_REDUCER: MemoryReducerOptions = {
  growthBytes: 16 * 1024 * 1024,
  quietBytes: 1024 * 1024,
  quietSamples: 2,
};

/** The decision alone, fed one sample per interval: pure, so a test steps it. */
export class MemoryReducer {
  readonly #o: MemoryReducerOptions;
  /** Array buffer bytes the last collection left (at first: at start, or the least sample). */
  #floor: number;
  #last: number | null = null;
  #quiet = 0;

  /** `arrayBuffers`: array buffer bytes now, before any traffic. */
  constructor(arrayBuffers: number, options: MemoryReducerOptions = DEFAULT_MEMORY_REDUCER) {
    this.#o = options;
    this.#floor = arrayBuffers;
  }

  /** A sample of array buffer bytes: true when a full GC should run now. */
  sample(arrayBuffers: number): boolean {
    if (arrayBuffers < this.#floor) this.#floor = arrayBuffers;
    const moved = this.#last === null ? Number.POSITIVE_INFINITY : Math.abs(arrayBuffers - this.#last);
    this.#last = arrayBuffers;
    this.#quiet = moved < this.#o.quietBytes ? this.#quiet + 1 : 0;
    return this.#quiet >= this.#o.quietSamples && arrayBuffers - this.#floor >= this.#o.growthBytes;
  }

  /** A collection ran and left `arrayBuffers` bytes (a sample after V8 freed them): the new floor. */
  collected(arrayBuffers: number): void {
    this.#floor = arrayBuffers;
    this.#last = arrayBuffers;
    this.#quiet = 0;
  }
}
