/**
 * The admin API: a fastify instance with the bearer-token check, the error answers and the
 * OpenAPI document, and one plugin per resource. It is built without listening, so tests drive
 * it with `inject()`; `await app.ready()` (or `listen()`) loads the plugins.
 *
 * Every route's zod schema validates its input and serializes its answer
 * (fastify-type-provider-zod) and describes it in the document (docs.ts).
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from "fastify";
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from "fastify-type-provider-zod";
import { AuthError, NotFoundError, ValidationError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import type { Store } from "../store/store.js";
import { agentRoutes } from "./agents.js";
import { auditRoutes } from "./audit.js";
import { backupRoutes } from "./backup.js";
import { clientRoutes } from "./clients.js";
import { connectionRoutes } from "./connections.js";
import type { AdminDeps } from "./deps.js";
import { registerDocs } from "./docs.js";
import { answerForError } from "./error-answer.js";
import { eventRoutes } from "./events.js";
import { ftpCheckRoutes } from "./ftp-check.js";
import { healthRoutes } from "./health.js";
import { mappingRoutes } from "./mappings.js";
import { secretMatches } from "./secrets.js";

export interface AdminApiOptions {
  readonly store: Store;
  readonly deps: AdminDeps;
  /** SHA-256 hex of the admin bearer token. */
  readonly adminTokenHash: string;
  readonly logger: Logger;
  /** Underpass version, shown by /healthz and the OpenAPI document. */
  readonly version: string;
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
  const app = Fastify({ loggerInstance: logger, bodyLimit: BODY_LIMIT }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  acceptJsonOnly(app);

  // A route is public when its schema says it needs no security (`security: []`), so the
  // document and the check cannot disagree. Runs before the body is read.
  app.addHook("onRequest", async (req, reply) => {
    if (req.routeOptions.schema?.security?.length === 0) return;
    const header = req.headers.authorization;
    const match = header === undefined ? null : /^Bearer +(\S+) *$/i.exec(header);
    const token = match?.[1];
    if (token === undefined) {
      reply.header("www-authenticate", 'Bearer realm="underpass"');
      throw new AuthError('missing or malformed Authorization header; expected "Bearer <admin token>"');
    }
    if (!secretMatches(token, adminTokenHash)) {
      reply.header("www-authenticate", 'Bearer realm="underpass", error="invalid_token"');
      req.log.warn({ remoteAddress: req.ip }, "admin API: wrong admin token");
      throw new AuthError("invalid admin token");
    }
  });

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
  app.register(ftpCheckRoutes, { store, deps });
  app.register(auditRoutes, { store, deps });
  app.register(eventRoutes, { store, deps });
  app.register(backupRoutes, { store, deps });
  return app;
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
