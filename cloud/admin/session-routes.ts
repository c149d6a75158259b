/**
 * `/v1/session`: the console's sign-in (the admin token for a session cookie), the session's
 * state (with its CSRF token, for a page that was reloaded) and sign-out. These are the
 * browser's routes: scripts send the bearer token and need none of them, so they stay out of
 * the OpenAPI document (README "Console" describes them). Sign-ins, sign-outs and refused
 * sign-ins go to the audit trail.
 */
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { AuthError, RateLimitedError } from "../../shared/errors.js";
import type { AuditLog } from "../audit/audit-log.js";
import { json, noContent } from "./responses.js";
import { errorAnswer } from "./schemas.js";
import { secretMatches } from "./secrets.js";
import type { ConsoleSessions, SessionView } from "./session.js";
import {
  checkChangeProof,
  checkSameOrigin,
  clearedCookie,
  sessionCookie,
  sessionIdOf,
} from "./session-auth.js";
import type { SignInLimiter } from "./sign-in-limiter.js";

/** Where agents and SOCKS clients reach this relay, for the commands the console shows. */
export interface ConsoleEndpoints {
  readonly tunnelPort: number;
  /** The tunnel is `wss` (UNDERPASS_TLS_CERT is set). */
  readonly tunnelTls: boolean;
  readonly socksPort: number;
}

export interface SessionRouteOptions {
  readonly sessions: ConsoleSessions;
  readonly limiter: SignInLimiter;
  /** SHA-256 hex of the admin token. */
  readonly adminTokenHash: string;
  readonly audit: AuditLog;
  /** Known once the relay listens; null for an admin API on its own (tests). */
  readonly endpoints: () => ConsoleEndpoints | null;
}

const signInBody = z.strictObject({
  token: z.string({ error: "required" }).min(1, "required").max(1024),
});

const sessionAnswer = z.strictObject({
  /** Names the session in audit entries. */
  actor: z.string(),
  csrfToken: z.string(),
  csrfHeader: z.string(),
  expiresAt: z.string(),
  idleExpiresAt: z.string(),
  idleTimeoutMs: z.number().int(),
  endpoints: z
    .strictObject({ tunnelPort: z.number().int(), tunnelTls: z.boolean(), socksPort: z.number().int() })
    .nullable(),
});

const refused = {
  400: json("Not a sign-in body.", errorAnswer),
  401: json("Wrong admin token, or no live session.", errorAnswer),
  403: json("From another origin, or a sign-out without the session's CSRF token.", errorAnswer),
  429: json("Too many failed sign-ins from this address; see Retry-After.", errorAnswer),
  500: json("Internal failure.", errorAnswer),
};

export const sessionRoutes: FastifyPluginAsyncZod<SessionRouteOptions> = async (app, o) => {
  const { sessions, limiter } = o;
  const answer = (s: SessionView) => ({
    actor: s.actor,
    csrfToken: s.csrfToken,
    csrfHeader: "x-csrf-token",
    expiresAt: new Date(s.expiresAt).toISOString(),
    idleExpiresAt: new Date(s.idleExpiresAt).toISOString(),
    idleTimeoutMs: sessions.idleMs,
    endpoints: o.endpoints(),
  });

  app.post(
    "/v1/session",
    {
      schema: {
        hide: true,
        security: [],
        body: signInBody,
        response: { 200: json("Signed in; the cookie is set.", sessionAnswer), ...refused },
      },
    },
    async (req, reply) => {
      checkSameOrigin(req);
      const address = req.ip;
      const waitMs = limiter.waitMs(address);
      if (waitMs > 0) throw rateLimited(reply, waitMs, "too many failed sign-ins from this address");
      if (!secretMatches(req.body.token, o.adminTokenHash)) {
        const wait = limiter.failed(address);
        req.log.warn({ remoteAddress: address, waitMs: wait }, "console: sign-in with a wrong admin token");
        o.audit.append({
          event: "console.sign-in-failed",
          message: `console sign-in from ${address} with a wrong admin token`,
          remote: address,
          waitMs: wait,
        });
        if (wait > 0) throw rateLimited(reply, wait, "wrong admin token; too many failed sign-ins");
        throw new AuthError("wrong admin token");
      }
      limiter.succeeded(address);
      // signing in again replaces the session this browser had
      const previous = sessionIdOf(req);
      if (previous !== undefined) sessions.end(previous);
      const { id, session } = sessions.create();
      req.log.info({ actor: session.actor, remoteAddress: address }, "console: signed in");
      o.audit.append({
        event: "console.signed-in",
        message: `console session ${session.actor} started from ${address}`,
        actor: session.actor,
        remote: address,
      });
      reply.header("set-cookie", sessionCookie(req, id, session.expiresAt - session.createdAt));
      reply.header("cache-control", "no-store");
      return answer(session);
    },
  );

  app.get(
    "/v1/session",
    {
      schema: {
        hide: true,
        security: [],
        response: { 200: json("The live session.", sessionAnswer), ...refused },
      },
    },
    async (req, reply) => {
      const id = sessionIdOf(req);
      const session = id === undefined ? null : sessions.touch(id);
      if (session === null) throw new AuthError("no console session: sign in");
      reply.header("cache-control", "no-store");
      return answer(session);
    },
  );

  app.delete(
    "/v1/session",
    { schema: { hide: true, security: [], response: { 204: noContent, ...refused } } },
    async (req, reply) => {
      const id = sessionIdOf(req);
      const session = id === undefined ? null : sessions.touch(id);
      if (id !== undefined && session !== null) {
        checkChangeProof(req, session);
        sessions.end(id);
        req.log.info({ actor: session.actor }, "console: signed out");
        o.audit.append({
          event: "console.signed-out",
          message: `console session ${session.actor} signed out`,
          actor: session.actor,
          remote: req.ip,
        });
      }
      // an ended or unknown session is signed out already: the cookie goes either way
      reply.header("set-cookie", clearedCookie(req));
      return reply.code(204).send();
    },
  );
};

/** The 429 error, its Retry-After set (whole seconds, rounded up: RFC 9110 §10.2.3). */
function rateLimited(
  reply: { header(name: string, value: string): unknown },
  waitMs: number,
  why: string,
): RateLimitedError {
  const seconds = Math.max(1, Math.ceil(waitMs / 1000));
  reply.header("retry-after", String(seconds));
  return new RateLimitedError(`${why}: try again in ${seconds} s`, seconds);
}
