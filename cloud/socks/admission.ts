/**
 * One SOCKS connection under the endpoint's bounds (cloud/limits/socks-guards.ts): it counts
 * before authentication under its source, a failed authentication is answered after the
 * backoff of its source and username, and once its request is read it counts under its client
 * and its source until it closes.
 *
 * A connection over a bound after authentication is answered `0x01` (general failure), as a
 * tunnel limit is: the bound is the relay's momentary state, and a retry later may pass. `0x02`
 * says the ruleset forbids the destination, which would send an operator to the mappings.
 */
import { LimitExceededError } from "../../shared/errors.js";
import { LIMIT } from "../limits/limit-names.js";
import type { PreauthSlot } from "../limits/preauth-guard.js";
import type { SocksGuards } from "../limits/socks-guards.js";
import type { Principal } from "./authenticate.js";

export class Admission {
  readonly #g: SocksGuards;
  #slot: PreauthSlot | null;
  readonly #key: string;
  #client: string | null = null;
  #source: string | null = null;
  /** A failed authentication's answer, held back by the backoff. */
  #tarpit: NodeJS.Timeout | null = null;

  constructor(guards: SocksGuards, slot: PreauthSlot) {
    this.#g = guards;
    this.#slot = slot;
    this.#key = slot.key;
  }

  /** The handshake deadline (`ms`) ran out: counted, the caller closes. */
  deadlineRanOut(ms: number): void {
    const key = this.#key;
    this.#g.hits.hit(
      LIMIT.SOCKS_HANDSHAKE_DEADLINE,
      key,
      ms,
      `SOCKS: no complete request from ${key} within ${ms} ms; closed`,
    );
  }

  /** A failed authentication of `username`: `answer` is called after its backoff (at once for the first few). */
  answerFailure(username: string, answer: () => void): void {
    const delayMs = this.failed(username);
    if (delayMs === 0) return answer();
    this.#tarpit = setTimeout(() => {
      this.#tarpit = null;
      answer();
    }, delayMs);
  }

  /** The client proved who it is (or needs not): it no longer counts as before authentication. */
  authenticated(): void {
    this.#slot?.admitted();
    this.#slot = null;
  }

  /**
   * A failed authentication of `username`: the wait, in ms, before its answer. Its slot stays
   * taken until the answer is due, even if the client hangs up first.
   */
  failed(username: string): number {
    const g = this.#g;
    const key = this.#key;
    const delayMs = g.authBackoff.fail([`source:${key}`, `user:${username}`]);
    if (delayMs > 0) {
      this.#slot?.holdUntil(Date.now() + delayMs);
      g.hits.hit(
        LIMIT.SOCKS_AUTH_BACKOFF,
        key,
        g.bounds.authBackoffMaxMs,
        `SOCKS: repeated failed authentications from ${key} or for ${username}; answered after ${delayMs} ms`,
      );
    }
    return delayMs;
  }

  /** The request was read: count under the client and the source, or the refusal. */
  establish(who: Principal): LimitExceededError | null {
    const g = this.#g;
    const source = this.#key;
    if (!g.perSource.tryAcquire(source)) {
      const max = g.perSource.max;
      g.hits.hit(
        LIMIT.SOCKS_CONNECTIONS_PER_SOURCE,
        source,
        max,
        `SOCKS: ${source} holds ${max} connections; refused`,
      );
      return new LimitExceededError(`${source} holds ${max} connections, the relay's limit per source`);
    }
    this.#source = source;
    if (who.clientId !== null) {
      if (!g.perClient.tryAcquire(who.clientId)) {
        const max = g.perClient.max;
        g.hits.hit(
          LIMIT.SOCKS_CONNECTIONS_PER_CLIENT,
          who.clientId,
          max,
          `SOCKS: client ${who.clientName ?? who.clientId} holds ${max} connections; refused`,
        );
        return new LimitExceededError(`the client holds ${max} connections, the relay's limit per client`);
      }
      this.#client = who.clientId;
    }
    return null;
  }

  /** Its socket closed (or its splice ended): what it counted goes back. */
  closed(): void {
    if (this.#tarpit) clearTimeout(this.#tarpit);
    if (this.#source !== null) this.#g.perSource.release(this.#source);
    if (this.#client !== null) this.#g.perClient.release(this.#client);
    this.#source = null;
    this.#client = null;
  }
}
