/**
 * A console session cookie standing in for the admin token: reading and writing the cookie
 * (RFC 6265), and the proofs a change made with it must carry — the session's CSRF token in a
 * header a page of another origin cannot set, and, where the browser says so, the same origin
 * (`Origin`, RFC 6454; `Sec-Fetch-Site`, W3C Fetch Metadata).
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import { AuthError, ForbiddenError } from "../../shared/errors.js";
import { type ConsoleSessions, type SessionView, sameSecret } from "./session.js";

declare module "fastify" {
  interface FastifyRequest {
    /** Who makes an admin change (change-audit.ts `actorOf`): set for a console session. */
    adminActor?: string;
  }
}

/** The cookie over plain HTTP. */
const COOKIE = "underpass_session";
/**
 * The cookie over HTTPS: the `__Host-` prefix makes the browser refuse it unless it is Secure,
 * has Path=/ and no Domain, so a sibling host cannot plant one (RFC 6265bis §4.1.3.2).
 */
const SECURE_COOKIE = "__Host-underpass_session";
/** The header that carries the session's CSRF token on a change. */
export const CSRF_HEADER = "x-csrf-token";
/** Methods that change nothing (RFC 9110 §9.2.1) and so need no CSRF proof. */
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

function secure(req: FastifyRequest): boolean {
  return req.protocol === "https";
}

/** The session cookie's name for this request's scheme. */
export function cookieName(req: FastifyRequest): string {
  return secure(req) ? SECURE_COOKIE : COOKIE;
}

/** The value of cookie `name` in a Cookie header (RFC 6265 §5.4), or undefined. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() !== name) continue;
    const value = part.slice(eq + 1).trim();
    return value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
  }
  return undefined;
}

/** The session id the request's cookie carries, or undefined. */
export function sessionIdOf(req: FastifyRequest): string | undefined {
  const id = readCookie(req.headers.cookie, cookieName(req));
  return id === undefined || id === "" ? undefined : id;
}

/** Set-Cookie for a new session: HttpOnly, SameSite=Strict, Path=/, Secure under TLS, expiring. */
export function sessionCookie(req: FastifyRequest, id: string, maxAgeMs: number): string {
  const attrs = [`${cookieName(req)}=${id}`, "Path=/", "HttpOnly", "SameSite=Strict"];
  attrs.push(`Max-Age=${Math.floor(maxAgeMs / 1000)}`);
  if (secure(req)) attrs.push("Secure");
  return attrs.join("; ");
}

/** Set-Cookie that makes the browser drop the session cookie. */
export function clearedCookie(req: FastifyRequest): string {
  return sessionCookie(req, "", 0);
}

/** This server's origin as the browser spells it: scheme and Host (RFC 6454 §6.1). */
function ownOrigin(req: FastifyRequest): string {
  return `${req.protocol}://${req.host}`.toLowerCase();
}

/**
 * Refuses a request a page of another origin made: `Sec-Fetch-Site` other than `same-origin`, or
 * an `Origin` other than ours. A client that sends neither (curl, an older browser) passes:
 * the CSRF token is the proof that does not depend on the browser.
 */
export function checkSameOrigin(req: FastifyRequest): void {
  const site = req.headers["sec-fetch-site"];
  if (site !== undefined && site !== "same-origin") {
    throw new ForbiddenError(`refused: the request comes from another site (Sec-Fetch-Site: ${site})`);
  }
  const origin = req.headers.origin;
  if (origin !== undefined && origin.toLowerCase() !== ownOrigin(req)) {
    throw new ForbiddenError(`refused: the request comes from another origin (${origin})`);
  }
}

/** A change must carry the session's CSRF token and come from our own origin. */
export function checkChangeProof(req: FastifyRequest, session: SessionView): void {
  if (SAFE_METHODS.has(req.method)) return;
  checkSameOrigin(req);
  const presented = req.headers[CSRF_HEADER];
  if (typeof presented !== "string" || !sameSecret(presented, session.csrfToken)) {
    throw new ForbiddenError(
      `refused: a change made with a console session needs the session's CSRF token in ${CSRF_HEADER}`,
    );
  }
}

/**
 * Authenticates `req` by its console session cookie. False when it carries none (the caller
 * goes on to the bearer token); true when the session is live — its actor set, a change's proof
 * checked, the answer held so that it ends with the session. An ended session is a 401; a
 * change without its proof a 403.
 */
export function authenticateByCookie(
  sessions: ConsoleSessions,
  req: FastifyRequest,
  reply: FastifyReply,
): boolean {
  const id = sessionIdOf(req);
  if (id === undefined) return false;
  const session = sessions.touch(id);
  if (session === null) {
    reply.header("www-authenticate", 'Bearer realm="underpass", error="invalid_token"');
    reply.header("set-cookie", clearedCookie(req));
    throw new AuthError("the console session has ended (signed out or expired): sign in again");
  }
  checkChangeProof(req, session);
  req.adminActor = session.actor;
  sessions.hold(id, reply.raw);
  return true;
}
