/**
 * The relay's OPENs that await their OPEN_RESULT, each with a deadline: the dial timeout the
 * agent was given plus a grace for the answer to travel. An OPEN that runs out is reset, and
 * its caller hears HOST_UNREACHABLE (SOCKS 0x04), as for a dial that timed out on premises.
 */
import type { UnderpassError } from "../errors.js";
import { OPEN_CODE, RESET_CODE } from "./constants.js";
import type { MuxStream } from "./mux-stream.js";
import { openCodeToError } from "./open-codes.js";

export interface OpenResult {
  readonly stream: MuxStream;
  readonly address: string;
  readonly port: number;
}

export interface PendingOpen {
  readonly stream: MuxStream;
  resolve(result: OpenResult): void;
  reject(err: UnderpassError): void;
}

interface Entry extends PendingOpen {
  readonly timer: NodeJS.Timeout;
}

/** Extra time the relay waits for an OPEN_RESULT beyond the dial timeout it gave the agent, in ms. */
const OPEN_GRACE_MS = 2_000;

export class PendingOpens {
  readonly #entries = new Map<number, Entry>();

  get size(): number {
    return this.#entries.size;
  }

  /** Waits for `stream`'s OPEN_RESULT for `timeoutMs` plus the grace. */
  add(stream: MuxStream, timeoutMs: number): Promise<OpenResult> {
    return new Promise<OpenResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (!this.#entries.delete(stream.id)) return;
        stream.reset(RESET_CODE.TIMEOUT, "open timed out");
        reject(
          openCodeToError(OPEN_CODE.HOST_UNREACHABLE, `no answer from the agent within ${timeoutMs} ms`),
        );
      }, timeoutMs + OPEN_GRACE_MS);
      this.#entries.set(stream.id, { stream, timer, resolve, reject });
    });
  }

  /** The open of stream `id`, no longer pending (its deadline cleared), if it was. */
  take(id: number): PendingOpen | undefined {
    const e = this.#entries.get(id);
    if (e === undefined) return undefined;
    this.#entries.delete(id);
    clearTimeout(e.timer);
    return e;
  }

  /** The tunnel is gone: every pending open fails with `err`. */
  rejectAll(err: UnderpassError): void {
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    for (const e of entries) {
      clearTimeout(e.timer);
      e.reject(err);
    }
  }
}
