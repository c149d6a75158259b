/**
 * A buffer of known size filled across the chunks of a byte stream: the control frames of the
 * incremental decoders (tunnel frames, WebSocket frames), whose bytes may span any split.
 */
export class PartialBuffer {
  readonly bytes: Buffer;
  #filled: number;

  /** `bytes` to fill, of which the first `filled` are already there. */
  constructor(bytes: Buffer, filled = 0) {
    this.bytes = bytes;
    this.#filled = filled;
  }

  get full(): boolean {
    return this.#filled === this.bytes.length;
  }

  /** Copies what still fits from `chunk` at `offset`; returns the offset after what it took. */
  fill(chunk: Buffer, offset: number): number {
    const take = Math.min(this.bytes.length - this.#filled, chunk.length - offset);
    chunk.copy(this.bytes, this.#filled, offset, offset + take);
    this.#filled += take;
    return offset + take;
  }
}
