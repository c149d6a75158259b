/**
 * Failed admin authentications (a wrong or missing bearer token, an ended console session)
 * counted with @fastify/rate-limit under two keys: the request's source address (IPv6: its
 * /64) and the presented secret's id (a hash prefix, never the secret). Past `failures` in a
 * window under either key, a failure is answered 429 with `Retry-After` instead of 401, and
 * each further failure starts the window again (continueExceeding): a loop that does not wait
 * stays refused, a client that waits the time it was told is counted afresh.
 *
 * Only failures are counted, and the right token is compared before any count is read: it
 * passes at once from any source, whatever failed before, its own source included. A source
 * key alone would let an attacker's flood shut out a legitimate client behind the same
 * address; a secret key alone would not catch a loop that tries a new token each time. Both
 * together keep a stale token retried from many hosts (a forgotten cron job) from filling the
 * logs, and never refuse the secret that is right.
 *
 * A 429 still tells its caller "not this token", as a 401 would: what slows a guessing loop is
 * that a 429 is answered only after `delayMs`, so a loop that awaits its answers makes one
 * guess per delay and connection. The answers held so are bounded (`MAX_HELD`); past that they
 * go out at once, counted as the bound that bit.
 */
import { createHash } from "node:crypto";
import rateLimit from "@fastify/rate-limit";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { sourceKey } from "../limits/source-key.js";

/** The bound on failed admin authentications (cloud/limits/bounds.ts). */
export interface AdminAuthLimit {
  /** Failures of one source, or of one presented secret, in a window before they get 429. */
  readonly failures: number;
  /** The window, in ms; `Retry-After` says how much of it is left. */
  readonly windowMs: number;
  /** A 429 is answered after this long, in ms. */
  readonly delayMs: number;
}

export const DEFAULT_ADMIN_AUTH_LIMIT: AdminAuthLimit = { failures: 10, windowMs: 60_000, delayMs: 1000 };

/** 429s held for their delay at once, in all; more are answered without it. */
export const MAX_HELD = 1024;

/** Keys followed at once, per key kind; past them the least recently failing is forgotten. */
const MAX_KEYS = 10_000;

/** Which key a limited failure was counted under. */
export type LimitedBy = "source" | "secret";

export type FailureVerdict =
  | { readonly limited: false; readonly remaining: number }
  | {
      readonly limited: true;
      readonly by: LimitedBy;
      /** The key that is over: a source address or `secret <id>`. */
      readonly key: string;
      readonly max: number;
      readonly retryAfterSeconds: number;
    };

/** Id of a presented secret, for counting and audit: 12 hex digits of a salted SHA-256. */
export function secretId(secret: string): string {
  return createHash("sha256")
    .update("underpass admin secret id\0")
    .update(secret, "utf8")
    .digest("hex")
    .slice(0, 12);
}

type Check = (req: FastifyRequest) => Promise<
  | { isAllowed: true }
  | {
      isAllowed: false;
      isExceeded: boolean;
      remaining: number;
      ttlInSeconds: number;
      max: number;
      key: string;
    }
>;

export class AdminAuthLimiter {
  readonly #limit: AdminAuthLimit;
  #held = 0;
  #bySource: Check | null = null;
  #bySecret: Check | null = null;

  constructor(limit: AdminAuthLimit) {
    this.#limit = limit;
  }

  /** Registers @fastify/rate-limit on `app` (no route hook: only failures are counted). */
  register(app: FastifyInstance): void {
    app.register(rateLimit, { global: false, cache: MAX_KEYS, continueExceeding: true }).after((err) => {
      if (err) throw err;
      // each limiter keeps a store of its own: its bound on keys and its window restart are
      // given here (the plugin's options reach only its route hooks, which are off)
      const common = {
        max: this.#limit.failures,
        timeWindow: this.#limit.windowMs,
        continueExceeding: true,
        cache: MAX_KEYS,
      };
      this.#bySource = app.createRateLimit({
        ...common,
        keyGenerator: (req) => `source ${sourceKey(req.ip)}`,
      }) as Check;
      this.#bySecret = app.createRateLimit({
        ...common,
        keyGenerator: (req) => `secret ${failedSecretIds.get(req) ?? ""}`,
      }) as Check;
    });
  }

  /**
   * Count one failure of `req`, under its source and, when a secret was presented, under
   * that secret's id. Says whether it is now over either bound.
   */
  async failed(req: FastifyRequest, secret: string | null): Promise<FailureVerdict> {
    const bySource = this.#bySource;
    const bySecret = this.#bySecret;
    if (bySource === null || bySecret === null) return { limited: false, remaining: this.#limit.failures };
    const checks: Array<{ by: LimitedBy; check: Check }> = [{ by: "source", check: bySource }];
    if (secret !== null) {
      failedSecretIds.set(req, secretId(secret));
      checks.push({ by: "secret", check: bySecret });
    }
    let remaining = this.#limit.failures;
    let over: FailureVerdict | null = null;
    for (const { by, check } of checks) {
      const r = await check(req);
      if (r.isAllowed) continue;
      remaining = Math.min(remaining, r.remaining);
      if (r.isExceeded && (over === null || (over.limited && r.ttlInSeconds > over.retryAfterSeconds))) {
        over = { limited: true, by, key: r.key, max: r.max, retryAfterSeconds: Math.max(1, r.ttlInSeconds) };
      }
    }
    return over ?? { limited: false, remaining };
  }

  /**
   * Waits the delay of a 429 before it is answered; false, at once, when `MAX_HELD` answers
   * wait already (the caller answers without the delay).
   */
  async hold(): Promise<boolean> {
    if (this.#held >= MAX_HELD) return false;
    this.#held++;
    try {
      await new Promise((resolve) => setTimeout(resolve, this.#limit.delayMs));
      return true;
    } finally {
      this.#held--;
    }
  }
}

/** The id of the secret a failing request presented, for the secret key's generator. */
const failedSecretIds = new WeakMap<FastifyRequest, string>();
