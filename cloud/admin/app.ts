/**
 * The admin API: a fastify instance with the bearer-token check, the error answers and the
 * OpenAPI document, and one plugin per resource. It is built without listening, so tests drive
 * it with `inject()`; `await app.ready()` (or `listen()`) loads the plugins.
 *
 * Every route's zod schema validates its input and serializes its answer
 * (fastify-type-provider-zod) and describes it in the document (docs.ts).
 */
import { createServer as createHttpsServer } from "node:https";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerFactory,
} from "fastify";
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from "fastify-type-provider-zod";
import { AuthError, NotFoundError, RateLimitedError, ValidationError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import type { AdminAuthFailed, RelayEvents } from "../events.js";
import type { LimitHits } from "../limits/limit-hits.js";
import { LIMIT } from "../limits/limit-names.js";
import type { Store } from "../store/store.js";
import { agentRoutes } from "./agents.js";
import { auditRoutes } from "./audit.js";
import {
  type AdminAuthLimit,
  AdminAuthLimiter,
  DEFAULT_ADMIN_AUTH_LIMIT,
  MAX_HELD,
  secretId,
} from "./auth-limit.js";
import { backupRoutes } from "./backup.js";
import { clientRoutes } from "./clients.js";
import { clusterRoutes } from "./cluster.js";
import { connectionRoutes } from "./connections.js";
import { consoleAssets } from "./console-assets.js";
import type { AdminDeps } from "./deps.js";
import { registerDocs } from "./docs.js";
import { answerForError } from "./error-answer.js";
import { eventRoutes } from "./events.js";
import { ftpCheckRoutes } from "./ftp-check.js";
import { healthRoutes } from "./health.js";
import { mappingRoutes } from "./mappings.js";
import { hashSecret, secretMatches } from "./secrets.js";
import { ConsoleSessions } from "./session.js";
import { authenticateByCookie, sessionIdOf } from "./session-auth.js";
import { type ConsoleEndpoints, sessionRoutes } from "./session-routes.js";
import { SignInLimiter } from "./sign-in-limiter.js";

export interface AdminApiOptions {
  readonly store: Store;
  readonly deps: AdminDeps;
  /** SHA-256 hex of the admin bearer token. */
  readonly adminTokenHash: string;
  readonly logger: Logger;
  /** Underpass version, shown by /healthz and the OpenAPI document. */
  readonly version: string;
  /** Where a refused bearer token is published (the relay's metrics count them). */
  readonly events?: Pick<RelayEvents, "adminAuthFailed">;
  /** Where agents and SOCKS clients reach the relay, for the console's commands (known once it listens). */
  readonly consoleEndpoints?: () => ConsoleEndpoints | null;
  /** PEM certificate and key: the admin listener speaks HTTPS (UNDERPASS_ADMIN_TLS_CERT / _KEY). */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer } | undefined;
  /** Failed authentications per source and per presented secret before 429 (auth-limit.ts). */
  readonly authLimit?: AdminAuthLimit;
  /** Where the bound on failed authentications is told when it bites (metrics, audit, a log line). */
  readonly hits?: Pick<LimitHits, "hit">;
}

/** Largest request body, in bytes; the biggest legitimate body (a mapping) is well under 2 KiB. */
const BODY_LIMIT = 64 * 1024;

export function buildAdminApi(opts: AdminApiOptions): FastifyInstance {
  const { store, deps, adminTokenHash, version } = opts;
  const logger: FastifyBaseLogger = opts.logger.child(
    { component: "admin-api" },
    // Only these request fields reach a log line: never headers, so never Authorization.
    {
      serializers: {
        req: (req: FastifyRequest) => ({ method: req.method, url: req.url, remoteAddress: req.ip }),
      },
    },
  );
  const tls = opts.tls;
  // An https.Server is an http.Server that speaks TLS: fastify serves it the same way.
  const serverFactory: FastifyServerFactory | undefined =
    tls === undefined ? undefined : (handler) => createHttpsServer({ cert: tls.cert, key: tls.key }, handler);
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: BODY_LIMIT,
    ...(serverFactory === undefined ? {} : { serverFactory }),
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  acceptJsonOnly(app);
  const sessions = new ConsoleSessions({
    onEvict: (actor) =>
      logger.warn({ actor }, "console: session limit reached, least recently used one ended"),
  });
  const signIns = new SignInLimiter();
  app.addHook("onClose", async () => sessions.close());

  const authLimit = new AdminAuthLimiter(opts.authLimit ?? DEFAULT_ADMIN_AUTH_LIMIT);
  authLimit.register(app);

  /**
   * A failed authentication: published (metrics, the rate-limited audit entry), counted per
   * source and per secret, and answered `refusal` (401) or, over a bound, 429 with Retry-After.
   */
  const refuse = async (
    req: FastifyRequest,
    reply: FastifyReply,
    reason: AdminAuthFailed["reason"],
    secret: string | null,
    refusal: AuthError,
  ): Promise<never> => {
    const verdict = await authLimit.failed(req, secret);
    publishAuthFailed(opts.events, req, reason, secret === null ? null : secretId(secret), verdict.limited);
    if (!verdict.limited) {
      reply.header("x-ratelimit-remaining", String(verdict.remaining));
      throw refusal;
    }
    const s = verdict.retryAfterSeconds;
    if (!(await authLimit.hold())) {
      opts.hits?.hit(
        LIMIT.ADMIN_AUTH_HELD,
        "*",
        MAX_HELD,
        `admin API: ${MAX_HELD} refused authentications wait for their delay; answered 429 at once`,
      );
    }
    opts.hits?.hit(
      verdict.by === "source" ? LIMIT.ADMIN_AUTH_PER_SOURCE : LIMIT.ADMIN_AUTH_PER_SECRET,
      verdict.key,
      verdict.max,
      `admin API: more than ${verdict.max} failed authentications ${verdict.by === "source" ? "from this source" : "with this secret"}; answered 429 for ${s} s`,
    );
    reply.header("retry-after", String(s));
    reply.header("x-ratelimit-limit", String(verdict.max));
    reply.header("x-ratelimit-remaining", "0");
    reply.header("x-ratelimit-reset", String(s));
    throw new RateLimitedError(
      `too many failed admin authentications ${verdict.by === "source" ? "from this address" : "with this token"}: try again in ${s} s`,
      s,
    );
  };

  // A route is public when its schema says it needs no security (`security: []`), so the
  // document and the check cannot disagree. Runs before the body is read. The right token is
  // compared first and passes at once, whatever failed before (auth-limit.ts).
  app.addHook("onRequest", async (req, reply) => {
    if (req.routeOptions.schema?.security?.length === 0) return;
    const header = req.headers.authorization;
    if (req.routeOptions.config.cluster === true) return checkClusterSecret(req, reply, header);
    // Without the header, a console session cookie may stand in for the token (session-auth.ts).
    if (header === undefined) {
      try {
        if (authenticateByCookie(sessions, req, reply)) return;
      } catch (err) {
        if (err instanceof AuthError) return refuse(req, reply, "session", sessionIdOf(req) ?? null, err);
        throw err;
      }
    }
    const match = header === undefined ? null : /^Bearer +(\S+) *$/i.exec(header);
    const token = match?.[1];
    if (token === undefined) {
      reply.header("www-authenticate", 'Bearer realm="underpass"');
      return refuse(
        req,
        reply,
        "missing",
        null,
        new AuthError('missing or malformed Authorization header; expected "Bearer <admin token>"'),
      );
    }
    if (!secretMatches(token, adminTokenHash)) {
      reply.header("www-authenticate", 'Bearer realm="underpass", error="invalid_token"');
      return refuse(req, reply, "invalid", token, new AuthError("invalid admin token"));
    }
  });

  /** The routes the relays of a cluster call one another on take the cluster secret only. */
  async function checkClusterSecret(
    req: FastifyRequest,
    reply: FastifyReply,
    header: string | undefined,
  ): Promise<void> {
    const secret = deps.cluster.secret();
    const token = header === undefined ? undefined : /^Bearer +(\S+) *$/i.exec(header)?.[1];
    if (secret !== null && token !== undefined && secretMatches(token, hashSecret(secret))) return;
    req.log.warn({ remoteAddress: req.ip }, "admin API: a cluster route without the cluster secret");
    // limited like any other failed secret: the cluster routes are no way around the bound
    return refuse(
      req,
      reply,
      token === undefined ? "missing" : "invalid",
      token ?? null,
      new AuthError("this route is for the relays of the cluster"),
    );
  }

  app.setNotFoundHandler(async (req, reply) =>
    reply.code(404).send({ error: NotFoundError.spec.code, message: `no route ${req.method} ${req.url}` }),
  );

  app.setErrorHandler(async (err, req, reply) => {
    const { status, body } = answerForError(err);
    if (status >= 500) req.log.error({ err }, "admin request failed");
    else req.log.info({ code: body.error, status }, "admin request rejected");
    return reply.code(status).send(body);
  });

  registerDocs(app, version);
  app.register(healthRoutes, { metrics: deps.metrics, version, store });
  app.register(agentRoutes, { store, deps });
  app.register(clientRoutes, { store, deps });
  app.register(mappingRoutes, { store, deps });
  app.register(connectionRoutes, { store, deps });
  app.register(clusterRoutes, { store, deps });
  app.register(ftpCheckRoutes, { store, deps });
  app.register(auditRoutes, { store, deps });
  app.register(eventRoutes, { store, deps });
  app.register(backupRoutes, { store, deps });
  app.register(sessionRoutes, {
    sessions,
    limiter: signIns,
    adminTokenHash,
    audit: deps.audit,
    endpoints: opts.consoleEndpoints ?? (() => null),
  });
  app.register(consoleAssets, {
    onMissing: (dir) => logger.warn({ dir }, "console: not built (npm run build); / answers 503"),
  });
  return app;
}

function publishAuthFailed(
  events: AdminApiOptions["events"],
  req: FastifyRequest,
  reason: AdminAuthFailed["reason"],
  secretId: string | null,
  limited: boolean,
): void {
  const ch = events?.adminAuthFailed;
  if (ch?.active) ch.publish({ relayId: ch.relayId, remoteAddress: req.ip, reason, secretId, limited });
}

/**
 * JSON bodies only: any other content type is refused (400). An empty body is "no body" (so
 * `POST .../check` works from any client); a malformed one is a validation error like any other.
 */
function acceptJsonOnly(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    ["application/json", "application/merge-patch+json"],
    { parseAs: "string" },
    (_req, body, done) => {
      const text = typeof body === "string" ? body : body.toString("utf8");
      if (text.trim() === "") return done(null, undefined);
      try {
        done(null, JSON.parse(text));
      } catch (err) {
        const message = `the body is not valid JSON: ${err instanceof Error ? err.message : String(err)}`;
        done(new ValidationError(message, [{ path: "", message }]), undefined);
      }
    },
  );
}
