/**
 * Console sessions: the admin token, presented once at sign-in, is exchanged for a random
 * session id that travels in an HttpOnly cookie. Sessions live in this process's memory only (a
 * relay restart signs everyone out), keyed by the SHA-256 of the id, so the table never holds
 * what a cookie carries. Each session has an absolute and an idle lifetime, a CSRF token the
 * page sends back on every change, and the long-lived answers it holds open (the event stream),
 * which end with it.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { ServerResponse } from "node:http";

/** Lifetime from sign-in, in ms: 12 h, a working day. */
export const SESSION_ABSOLUTE_MS = 12 * 60 * 60 * 1000;
/** Lifetime without a request, in ms: 30 min (OWASP ASVS 3.3.2 allows up to 30 min idle for L2). */
export const SESSION_IDLE_MS = 30 * 60 * 1000;
/** Sessions held at once; signing in beyond it ends the one least recently used (logged). */
export const MAX_SESSIONS = 1000;
/** Expired sessions are swept this often, in ms, so a held event stream ends near its session's end. */
const SWEEP_MS = 30 * 1000;
/** Random bytes of a session id and of a CSRF token: 256 bits. */
const SECRET_BYTES = 32;

export interface SessionOptions {
  readonly absoluteMs?: number;
  readonly idleMs?: number;
  readonly maxSessions?: number;
  /** The clock, in ms since the epoch (tests move it). */
  readonly now?: () => number;
  /** Told when a session is ended to make room for a new one. */
  readonly onEvict?: (actor: string) => void;
}

/** What the routes and the auth hook know of a session; never its id. */
export interface SessionView {
  /** `console:<first 8 hex of the id's hash>`: names the session in audit entries. */
  readonly actor: string;
  readonly csrfToken: string;
  /** ms since the epoch. */
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly idleExpiresAt: number;
}

interface Session {
  readonly actor: string;
  readonly csrfToken: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  lastSeenAt: number;
  /** Answers held open for this session (SSE), ended with it. */
  readonly held: Set<ServerResponse>;
}

/** The session id as the table keys it: SHA-256 hex. */
function keyOf(id: string): string {
  return createHash("sha256").update(id, "utf8").digest("hex");
}

/** Constant-time equality of two strings of any length (their SHA-256 digests are compared). */
export function sameSecret(a: string, b: string): boolean {
  const da = createHash("sha256").update(a, "utf8").digest();
  const db = createHash("sha256").update(b, "utf8").digest();
  return timingSafeEqual(da, db);
}

export class ConsoleSessions {
  /** Keyed by the hash of the id; Map order is least recently used first (touch re-inserts). */
  readonly #sessions = new Map<string, Session>();
  readonly #absoluteMs: number;
  readonly #idleMs: number;
  readonly #max: number;
  readonly #now: () => number;
  readonly #onEvict: ((actor: string) => void) | undefined;
  readonly #sweep: NodeJS.Timeout;

  constructor(o: SessionOptions = {}) {
    this.#absoluteMs = o.absoluteMs ?? SESSION_ABSOLUTE_MS;
    this.#idleMs = o.idleMs ?? SESSION_IDLE_MS;
    this.#max = o.maxSessions ?? MAX_SESSIONS;
    this.#now = o.now ?? Date.now;
    this.#onEvict = o.onEvict;
    this.#sweep = setInterval(() => this.sweep(), SWEEP_MS);
    this.#sweep.unref();
  }

  /** Sessions held now. */
  get size(): number {
    return this.#sessions.size;
  }

  /** Idle lifetime, in ms (the page shows it). */
  get idleMs(): number {
    return this.#idleMs;
  }

  /** A new session; the returned id goes into the cookie and is not kept. */
  create(): { id: string; session: SessionView } {
    this.sweep();
    while (this.#sessions.size >= this.#max) {
      const [oldestKey, oldest] = this.#sessions.entries().next().value as [string, Session];
      this.#end(oldestKey, oldest);
      this.#onEvict?.(oldest.actor);
    }
    const id = randomBytes(SECRET_BYTES).toString("base64url");
    const key = keyOf(id);
    const now = this.#now();
    const session: Session = {
      actor: `console:${key.slice(0, 8)}`,
      csrfToken: randomBytes(SECRET_BYTES).toString("base64url"),
      createdAt: now,
      expiresAt: now + this.#absoluteMs,
      lastSeenAt: now,
      held: new Set(),
    };
    this.#sessions.set(key, session);
    return { id, session: this.#view(session) };
  }

  /** The live session of a cookie's id, its idle clock restarted; null when unknown or expired. */
  touch(id: string): SessionView | null {
    const key = keyOf(id);
    const session = this.#sessions.get(key);
    if (session === undefined) return null;
    const now = this.#now();
    if (this.#expired(session, now)) {
      this.#end(key, session);
      return null;
    }
    session.lastSeenAt = now;
    this.#sessions.delete(key);
    this.#sessions.set(key, session);
    return this.#view(session);
  }

  /** Keeps `res` until it closes; it is ended with the session (sign-out, expiry). */
  hold(id: string, res: ServerResponse): void {
    const session = this.#sessions.get(keyOf(id));
    if (session === undefined || res.writableEnded) return;
    session.held.add(res);
    res.once("close", () => session.held.delete(res));
  }

  /** Ends a session (sign-out); false when there was none. */
  end(id: string): boolean {
    const key = keyOf(id);
    const session = this.#sessions.get(key);
    if (session === undefined) return false;
    this.#end(key, session);
    return true;
  }

  /** Ends every expired session now. */
  sweep(): void {
    const now = this.#now();
    for (const [key, session] of this.#sessions) if (this.#expired(session, now)) this.#end(key, session);
  }

  /** Ends every session and stops the sweep (the admin API closes). */
  close(): void {
    clearInterval(this.#sweep);
    for (const [key, session] of this.#sessions) this.#end(key, session);
  }

  #expired(s: Session, now: number): boolean {
    return now >= s.expiresAt || now >= s.lastSeenAt + this.#idleMs;
  }

  #end(key: string, s: Session): void {
    this.#sessions.delete(key);
    // the event stream of a session that ended must not go on carrying events
    for (const res of s.held) res.destroy();
    s.held.clear();
  }

  #view(s: Session): SessionView {
    return {
      actor: s.actor,
      csrfToken: s.csrfToken,
      createdAt: s.createdAt,
      expiresAt: s.expiresAt,
      idleExpiresAt: Math.min(s.expiresAt, s.lastSeenAt + this.#idleMs),
    };
  }
}
