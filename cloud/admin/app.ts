/**
 * The admin API (fastify + zod): agents, SOCKS5 clients, mappings and live connections. The
 * app is built without listening, so tests drive it with `inject()`. Routes and their OpenAPI
 * description come from one table in `openapi.ts`.
 */

import { randomBytes } from "node:crypto";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from "fastify";
import type { z } from "zod";
import {
  AuthError,
  ConflictError,
  NotFoundError,
  StoreError,
  UnderpassError,
  ValidationError,
} from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { formatPortRange, rangesOverlap } from "../../shared/net/port-range.js";
import type { AgentRecord, ClientRecord, MappingRecord, Store } from "../store/store.js";
import type { AdminDeps, CheckResult } from "./deps.js";
import { httpStatusFor } from "./http-status.js";
import { buildOpenApiDocument, type OperationId, ROUTES } from "./openapi.js";
import {
  agentCreateBody,
  applyMappingPatch,
  clientCreateBody,
  type Issue,
  issuesOf,
  type MappingFields,
  mappingCreateBody,
  mappingToInput,
} from "./schemas.js";
import { generateSecret, hashSecret, secretMatches } from "./secrets.js";

export interface AdminApiOptions {
  readonly store: Store;
  readonly deps: AdminDeps;
  /** SHA-256 hex of the admin bearer token. */
  readonly adminTokenHash: string;
  readonly logger: Logger;
  /** Underpass version, shown by /healthz and the OpenAPI document. */
  readonly version: string;
}

/** A 409 that names the mapping in the way. */
export class MappingConflictError extends ConflictError {
  readonly conflictsWith: string;
  constructor(message: string, conflictsWith: string) {
    super(message);
    this.conflictsWith = conflictsWith;
  }
}

/** The body of every error answer. */
export interface ErrorAnswer {
  readonly error: string;
  readonly message: string;
  readonly issues?: readonly Issue[];
  readonly conflictsWith?: string;
}

/** Largest request body, in bytes; the biggest legitimate body (a mapping) is well under 2 KiB. */
const BODY_LIMIT = 64 * 1024;

type Handler = (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

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
  const app = Fastify({ loggerInstance: logger, bodyLimit: BODY_LIMIT });
  const document = buildOpenApiDocument(version);
  const publicPaths = new Set<string>(ROUTES.filter((r) => !r.auth).map((r) => r.path));

  // JSON bodies only: any other content type is refused (400). An empty body is "no body" (so
  // `POST .../check` works from any client); a malformed one is a validation error like any other.
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

  app.addHook("onRequest", async (req, reply) => {
    if (req.routeOptions.url !== undefined && publicPaths.has(req.routeOptions.url)) return;
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
    const { status, body } = errorAnswer(err);
    if (status >= 500) req.log.error({ err }, "admin request failed");
    else req.log.info({ code: body.error, status }, "admin request rejected");
    return reply.code(status).send(body);
  });

  /** One mutation at a time: the overlap check and the write it guards must not interleave. */
  let tail: Promise<unknown> = Promise.resolve();
  function serially<T>(job: () => Promise<T>): Promise<T> {
    const run = tail.then(job, job);
    tail = run.catch(() => undefined);
    return run;
  }

  /** Follow-up effects on the running relay after a durable change: logged, never undone. */
  function afterwards(req: FastifyRequest, what: string, effect: () => unknown): void {
    try {
      effect();
    } catch (err) {
      req.log.error({ err }, `admin API: ${what} failed after the change was stored`);
    }
  }

  function mappingOr404(id: string): MappingRecord {
    const m = store.getMapping(id);
    if (m === undefined) throw new NotFoundError(`no mapping ${id}`);
    return m;
  }

  function assertNoOverlap(fields: MappingFields, self?: string): void {
    const other = findOverlap(store.mappingsOf(fields.location), fields, self);
    if (other !== undefined) {
      throw new MappingConflictError(
        `${fields.virtualHost}:${formatPortRange(fields.virtualPort)} overlaps mapping ${other.id} ` +
          `(${other.virtualHost}:${formatPortRange(other.virtualPort)}) in location "${fields.location}"`,
        other.id,
      );
    }
  }

  const handlers: Record<OperationId, Handler> = {
    async createAgent(req, reply) {
      const body = parse(agentCreateBody, req.body);
      const token = generateSecret("upa");
      const agent: AgentRecord = {
        id: newId("ag"),
        name: body.name,
        location: body.location,
        tokenHash: hashSecret(token),
        createdAt: now(),
      };
      await store.addAgent(agent);
      req.log.info({ agentId: agent.id, location: agent.location }, "agent created");
      return reply.code(201).send({
        id: agent.id,
        name: agent.name,
        location: agent.location,
        token,
        createdAt: agent.createdAt,
      });
    },

    async listAgents() {
      return store.listAgents().map((a) => {
        const s = deps.tunnels.statusOf(a.id);
        return {
          id: a.id,
          name: a.name,
          location: a.location,
          createdAt: a.createdAt,
          connected: s.connected,
          connectedAt: s.connectedAt,
          remoteAddress: s.remoteAddress,
          version: s.version,
          tunnels: s.tunnels,
        };
      });
    },

    async deleteAgent(req, reply) {
      const id = idOf(req);
      if (!(await store.deleteAgent(id))) throw new NotFoundError(`no agent ${id}`);
      req.log.info({ agentId: id }, "agent deleted");
      afterwards(req, "closing the agent's tunnels", () => deps.tunnels.disconnectAgent(id, "agent deleted"));
      return reply.code(204).send();
    },

    async createClient(req, reply) {
      const body = parse(clientCreateBody, req.body);
      const password = generateSecret("ups");
      const client: ClientRecord = {
        id: newId("cl"),
        name: body.name,
        location: body.location,
        username: uniqueUsername(store, body.name),
        passwordHash: hashSecret(password),
        createdAt: now(),
      };
      await store.addClient(client);
      req.log.info(
        { clientId: client.id, location: client.location, username: client.username },
        "client created",
      );
      return reply.code(201).send({
        id: client.id,
        name: client.name,
        location: client.location,
        username: client.username,
        password,
        createdAt: client.createdAt,
      });
    },

    async listClients() {
      return store.listClients().map((c) => ({
        id: c.id,
        name: c.name,
        location: c.location,
        username: c.username,
        createdAt: c.createdAt,
      }));
    },

    async deleteClient(req, reply) {
      const id = idOf(req);
      if (!(await store.deleteClient(id))) throw new NotFoundError(`no client ${id}`);
      req.log.info({ clientId: id }, "client deleted");
      afterwards(req, "resetting the client's connections", () => deps.connections.killByClient(id));
      return reply.code(204).send();
    },

    async createMapping(req, reply) {
      const fields = parse(mappingCreateBody, req.body);
      const mapping = await serially(async () => {
        assertNoOverlap(fields);
        const at = now();
        const record: MappingRecord = { id: newId("mp"), ...fields, createdAt: at, updatedAt: at };
        await store.addMapping(record);
        return record;
      });
      req.log.info(
        { mappingId: mapping.id, location: mapping.location, virtualHost: mapping.virtualHost },
        "mapping created",
      );
      return reply.code(201).header("location", `/v1/mappings/${mapping.id}`).send(mappingAnswer(mapping));
    },

    async listMappings() {
      return store.listMappings().map(mappingAnswer);
    },

    async getMapping(req) {
      return mappingAnswer(mappingOr404(idOf(req)));
    },

    async updateMapping(req) {
      const id = idOf(req);
      const { before, after } = await serially(async () => {
        const current = mappingOr404(id);
        const result = applyMappingPatch(current, req.body);
        if (!result.success) throw validationError(result.error);
        const fields = result.data;
        if (sameFields(current, fields)) return { before: current, after: current };
        assertNoOverlap(fields, id);
        const record: MappingRecord = { id, ...fields, createdAt: current.createdAt, updatedAt: now() };
        await store.replaceMapping(record);
        return { before: current, after: record };
      });
      if (after !== before) {
        req.log.info(
          { mappingId: id, location: after.location, virtualHost: after.virtualHost },
          "mapping changed",
        );
        // A description is not routing: live transfers keep going when only that changed.
        if (!sameFields(before, { ...after, description: before.description })) {
          afterwards(req, "resetting the mapping's connections", () => deps.connections.killByMapping(id));
        }
      }
      return mappingAnswer(after);
    },

    async deleteMapping(req, reply) {
      const id = idOf(req);
      if (!(await serially(() => store.deleteMapping(id)))) throw new NotFoundError(`no mapping ${id}`);
      req.log.info({ mappingId: id }, "mapping deleted");
      afterwards(req, "resetting the mapping's connections", () => deps.connections.killByMapping(id));
      return reply.code(204).send();
    },

    async checkMapping(req) {
      const mapping = mappingOr404(idOf(req));
      let result: CheckResult;
      try {
        result = await deps.reachability.check(mapping);
      } catch (err) {
        // A coded failure (no agent, unreachable, refused) is an answer to the question asked.
        if (err instanceof UnderpassError && err.code !== UnderpassError.spec.code) {
          return { reachable: false, error: err.message };
        }
        throw err;
      }
      const answer: { reachable: boolean; latencyMs?: number; error?: string } = {
        reachable: result.reachable,
      };
      if (result.latencyMs !== undefined) answer.latencyMs = result.latencyMs;
      if (result.error !== undefined) answer.error = result.error;
      return answer;
    },

    async listConnections() {
      return deps.connections.list();
    },

    async deleteConnection(req, reply) {
      const id = idOf(req);
      if (!deps.connections.kill(id)) throw new NotFoundError(`no connection ${id}`);
      req.log.info({ connectionId: id }, "connection reset by the admin API");
      return reply.code(204).send();
    },

    async health() {
      return { status: "ok", version };
    },

    async metrics(_req, reply) {
      return reply.type("text/plain; version=0.0.4; charset=utf-8").send(await deps.metrics.render());
    },

    async openapi() {
      return document;
    },
  };

  for (const route of ROUTES) {
    app.route({ method: route.method, url: route.path, handler: handlers[route.operationId] });
  }
  return app;
}

// ---------------------------------------------------------------------------------------------

function errorAnswer(err: unknown): { status: number; body: ErrorAnswer } {
  if (err instanceof MappingConflictError) {
    return { status: 409, body: { error: err.code, message: err.message, conflictsWith: err.conflictsWith } };
  }
  if (err instanceof ValidationError) {
    return { status: 400, body: { error: err.code, message: err.message, issues: err.issues } };
  }
  if (err instanceof UnderpassError) {
    // Internal and store failures are logged in full; the caller learns only what happened.
    const hidden = err.code === UnderpassError.spec.code || err instanceof StoreError;
    const message = hidden ? (err.constructor as typeof UnderpassError).spec.description : err.message;
    return { status: httpStatusFor(err), body: { error: err.code, message } };
  }
  const fastifyError = asFastifyClientError(err);
  if (fastifyError !== undefined) {
    const { status, message } = fastifyError;
    return {
      status,
      body: { error: ValidationError.spec.code, message, issues: [{ path: "", message }] },
    };
  }
  return { status: 500, body: { error: UnderpassError.spec.code, message: "internal error" } };
}

/** Fastify's own 4xx errors (content type, body size, bad URL): the caller's input was wrong. */
function asFastifyClientError(err: unknown): { status: number; message: string } | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const code = "code" in err && typeof err.code === "string" ? err.code : "";
  const statusCode = "statusCode" in err && typeof err.statusCode === "number" ? err.statusCode : 0;
  if (!code.startsWith("FST_ERR_") || statusCode < 400 || statusCode >= 500) return undefined;
  if (code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") {
    return { status: 400, message: "the body must be JSON (Content-Type: application/json)" };
  }
  const message = err instanceof Error ? err.message : code;
  return { status: statusCode === 413 ? 413 : 400, message };
}

function validationError(error: z.ZodError): ValidationError {
  const issues = issuesOf(error);
  const first = issues[0];
  const summary =
    first === undefined ? "invalid body" : `${first.path === "" ? "body" : first.path}: ${first.message}`;
  return new ValidationError(
    issues.length > 1 ? `${summary} (and ${issues.length - 1} more issue(s))` : summary,
    issues,
  );
}

function parse<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw validationError(result.error);
  return result.data;
}

function idOf(req: FastifyRequest): string {
  return (req.params as Record<string, string | undefined>)["id"] ?? "";
}

function newId(prefix: "ag" | "cl" | "mp"): string {
  return `${prefix}_${randomBytes(8).toString("hex")}`;
}

function now(): string {
  return new Date().toISOString();
}

/** The first mapping of the location whose virtual host is the same and whose range intersects. */
export function findOverlap(
  mappings: readonly MappingRecord[],
  fields: Pick<MappingFields, "virtualHost" | "virtualPort">,
  exceptId?: string,
): MappingRecord | undefined {
  const host = fields.virtualHost.toLowerCase();
  return mappings.find(
    (m) =>
      m.id !== exceptId &&
      m.virtualHost.toLowerCase() === host &&
      rangesOverlap(m.virtualPort, fields.virtualPort),
  );
}

function sameFields(a: MappingFields, b: MappingFields): boolean {
  return (
    a.virtualHost === b.virtualHost &&
    a.virtualPort.start === b.virtualPort.start &&
    a.virtualPort.end === b.virtualPort.end &&
    a.internalHost === b.internalHost &&
    a.internalPort.start === b.internalPort.start &&
    a.internalPort.end === b.internalPort.end &&
    a.location === b.location &&
    a.protocol === b.protocol &&
    a.description === b.description
  );
}

function mappingAnswer(m: MappingRecord) {
  return {
    id: m.id,
    ...mappingToInput(m),
    createdAt: m.createdAt,
    updatedAt: m.updatedAt,
  };
}

/** Longest slug kept from the name; the username stays far below RFC 1929's 255 bytes. */
const MAX_SLUG = 32;

/**
 * A SOCKS5 username from the client's name: `erp-integration-3f9a1c`. Only `a-z 0-9 -`, so it
 * fits a proxy URL (`socks5://user:pass@host`) unescaped; the random suffix keeps it unique.
 */
export function usernameFromName(name: string): string {
  const slug =
    name
      .normalize("NFKD")
      .replace(/[\u0300-\u036f]/g, "")
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .slice(0, MAX_SLUG)
      .replace(/^-+|-+$/g, "") || "client";
  return `${slug}-${randomBytes(3).toString("hex")}`;
}

function uniqueUsername(store: Store, name: string): string {
  for (let attempt = 0; attempt < 8; attempt++) {
    const username = usernameFromName(name);
    if (store.findClientByUsername(username) === undefined) return username;
  }
  throw new StoreError("could not find a free username");
}
