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
  type FastifyRequest,
  type FastifyServerFactory,
} from "fastify";
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from "fastify-type-provider-zod";
import { AuthError, NotFoundError, ValidationError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import type { AdminAuthFailed, RelayEvents } from "../events.js";
import type { Store } from "../store/store.js";
import { agentRoutes } from "./agents.js";
import { auditRoutes } from "./audit.js";
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
import { authenticateByCookie } from "./session-auth.js";
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

  // A route is public when its schema says it needs no security (`security: []`), so the
  // document and the check cannot disagree. Runs before the body is read.
  app.addHook("onRequest", async (req, reply) => {
    if (req.routeOptions.schema?.security?.length === 0) return;
    const header = req.headers.authorization;
    if (req.routeOptions.config.cluster === true) return checkClusterSecret(req, header);
    // Without the header, a console session cookie may stand in for the token (session-auth.ts).
    if (header === undefined && authenticateByCookie(sessions, req, reply)) return;
    const match = header === undefined ? null : /^Bearer +(\S+) *$/i.exec(header);
    const token = match?.[1];
    if (token === undefined) {
      publishAuthFailed(opts.events, req, "missing");
      reply.header("www-authenticate", 'Bearer realm="underpass"');
      throw new AuthError('missing or malformed Authorization header; expected "Bearer <admin token>"');
    }
    if (!secretMatches(token, adminTokenHash)) {
      publishAuthFailed(opts.events, req, "invalid");
      reply.header("www-authenticate", 'Bearer realm="underpass", error="invalid_token"');
      req.log.warn({ remoteAddress: req.ip }, "admin API: wrong admin token");
      throw new AuthError("invalid admin token");
    }
  });

  /** The routes the relays of a cluster call one another on take the cluster secret only. */
  function checkClusterSecret(req: FastifyRequest, header: string | undefined): void {
    const secret = deps.cluster.secret();
    const token = header === undefined ? undefined : /^Bearer +(\S+) *$/i.exec(header)?.[1];
    if (secret !== null && token !== undefined && secretMatches(token, hashSecret(secret))) return;
    publishAuthFailed(opts.events, req, token === undefined ? "missing" : "invalid");
    req.log.warn({ remoteAddress: req.ip }, "admin API: a cluster route without the cluster secret");
    throw new AuthError("this route is for the relays of the cluster");
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
): void {
  const ch = events?.adminAuthFailed;
  if (ch?.active) ch.publish({ relayId: ch.relayId, remoteAddress: req.ip, reason });
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
