/**
 * The admin API's route table and the OpenAPI 3.1 document generated from it. `app.ts`
 * registers exactly these routes (its handler map is keyed by `OperationId`, so a route without
 * a handler does not compile), which keeps the document and the server from drifting apart.
 */
import { z } from "zod";
import { agentCreateBody, clientCreateBody, mappingCreateBody, mappingPatchBody } from "./schemas.js";

// ---------------------------------------------------------------------------------------------
// Answer schemas, for the document only: handlers build their answers by hand.

const isoTime = z.string().meta({ format: "date-time" });
const portAnswer = z
  .union([z.number().int(), z.string()])
  .meta({ description: 'A single port, or a range "start-end".', examples: [21, "30000-30010"] });

export const errorAnswer = z
  .object({
    error: z.string().meta({ description: "Stable code, UP_ERR_*.", examples: ["UP_ERR_VALIDATION"] }),
    message: z.string(),
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    conflictsWith: z.string().optional().meta({ description: "409 only: id of the overlapping mapping." }),
  })
  .meta({ description: "Every error answer has this form." });

const agentCreated = z.object({
  id: z.string(),
  name: z.string(),
  location: z.string(),
  token: z.string().meta({ description: "The agent token (UNDERPASS_AGENT_TOKEN); shown only here." }),
  createdAt: isoTime,
});

const agentListItem = z.object({
  id: z.string(),
  name: z.string(),
  location: z.string(),
  createdAt: isoTime,
  connected: z.boolean(),
  connectedAt: isoTime.nullable(),
  remoteAddress: z.string().nullable(),
  version: z.string().nullable(),
  tunnels: z.number().int(),
});

const clientCreated = z.object({
  id: z.string(),
  name: z.string(),
  location: z.string(),
  username: z.string().meta({ description: "SOCKS5 username (RFC 1929)." }),
  password: z.string().meta({ description: "SOCKS5 password (RFC 1929); shown only here." }),
  createdAt: isoTime,
});

const clientListItem = z.object({
  id: z.string(),
  name: z.string(),
  location: z.string(),
  username: z.string(),
  createdAt: isoTime,
});

const mappingAnswer = z.object({
  id: z.string(),
  virtualHost: z.string(),
  virtualPort: portAnswer,
  internalHost: z.string(),
  internalPort: portAnswer,
  location: z.string(),
  protocol: z.enum(["tcp", "ftp"]),
  description: z.string(),
  createdAt: isoTime,
  updatedAt: isoTime,
});

const checkAnswer = z.object({
  reachable: z.boolean(),
  latencyMs: z.number().optional(),
  error: z.string().optional(),
});

const connectionAnswer = z.object({
  id: z.string(),
  kind: z.enum(["connect", "bind", "check"]),
  clientId: z.string().nullable(),
  clientName: z.string().nullable(),
  mappingId: z.string(),
  location: z.string(),
  virtualHost: z.string(),
  virtualPort: z.number().int(),
  internalHost: z.string(),
  internalPort: z.number().int(),
  agentId: z.string(),
  remoteAddress: z.string(),
  bytesUp: z.number().int().meta({ description: "Bytes from the client towards the internal target." }),
  bytesDown: z.number().int().meta({ description: "Bytes from the internal target towards the client." }),
  startedAt: isoTime,
  ageMs: z.number(),
});

const healthAnswer = z.object({ status: z.literal("ok"), version: z.string() });

/** Named schemas, shown under `components.schemas` and referenced by `$ref`. */
const COMPONENTS = {
  Error: { schema: errorAnswer, io: "output" },
  AgentCreateBody: { schema: agentCreateBody, io: "input" },
  AgentCreated: { schema: agentCreated, io: "output" },
  Agent: { schema: agentListItem, io: "output" },
  ClientCreateBody: { schema: clientCreateBody, io: "input" },
  ClientCreated: { schema: clientCreated, io: "output" },
  Client: { schema: clientListItem, io: "output" },
  MappingCreateBody: { schema: mappingCreateBody, io: "input" },
  MappingPatchBody: { schema: mappingPatchBody, io: "input" },
  Mapping: { schema: mappingAnswer, io: "output" },
  CheckResult: { schema: checkAnswer, io: "output" },
  Connection: { schema: connectionAnswer, io: "output" },
  Health: { schema: healthAnswer, io: "output" },
} as const satisfies Record<string, { schema: z.ZodType; io: "input" | "output" }>;

type ComponentName = keyof typeof COMPONENTS;

// ---------------------------------------------------------------------------------------------
// The route table

export type HttpMethod = "GET" | "POST" | "PATCH" | "DELETE";

export interface ResponseSpec {
  readonly description: string;
  /** A named schema, or `[name]` for a JSON array of it. */
  readonly schema?: ComponentName | readonly [ComponentName];
  /** Defaults to application/json when there is a schema. */
  readonly contentType?: string;
}

export interface RouteSpec {
  readonly operationId: string;
  readonly method: HttpMethod;
  /** Fastify syntax (`:id`); shown as `{id}` in the document. */
  readonly path: string;
  readonly summary: string;
  /** Needs `Authorization: Bearer <admin token>`. */
  readonly auth: boolean;
  readonly body?: ComponentName;
  readonly responses: Readonly<Record<number, ResponseSpec>>;
}

const E400: ResponseSpec = {
  description: "Validation failed; `issues` lists each problem.",
  schema: "Error",
};
const E401: ResponseSpec = { description: "Missing or wrong admin token.", schema: "Error" };
const E404: ResponseSpec = { description: "No such id.", schema: "Error" };
const E409: ResponseSpec = {
  description: "Overlaps an existing mapping of the same location; `conflictsWith` names it.",
  schema: "Error",
};
const E500: ResponseSpec = {
  description: "Internal or store failure; nothing was changed.",
  schema: "Error",
};
const NO_CONTENT: ResponseSpec = { description: "Done." };

export const ROUTES = [
  {
    operationId: "createAgent",
    method: "POST",
    path: "/v1/agents",
    summary: "Register an agent; its token is shown once.",
    auth: true,
    body: "AgentCreateBody",
    responses: { 201: { description: "Created.", schema: "AgentCreated" }, 400: E400, 401: E401, 500: E500 },
  },
  {
    operationId: "listAgents",
    method: "GET",
    path: "/v1/agents",
    summary: "List agents with their live tunnel status.",
    auth: true,
    responses: { 200: { description: "Agents.", schema: ["Agent"] }, 401: E401 },
  },
  {
    operationId: "deleteAgent",
    method: "DELETE",
    path: "/v1/agents/:id",
    summary: "Delete an agent: its token stops working and live tunnels are closed.",
    auth: true,
    responses: { 204: NO_CONTENT, 401: E401, 404: E404, 500: E500 },
  },
  {
    operationId: "createClient",
    method: "POST",
    path: "/v1/clients",
    summary: "Register a SOCKS5 client; its password is shown once.",
    auth: true,
    body: "ClientCreateBody",
    responses: { 201: { description: "Created.", schema: "ClientCreated" }, 400: E400, 401: E401, 500: E500 },
  },
  {
    operationId: "listClients",
    method: "GET",
    path: "/v1/clients",
    summary: "List SOCKS5 clients (never their passwords).",
    auth: true,
    responses: { 200: { description: "Clients.", schema: ["Client"] }, 401: E401 },
  },
  {
    operationId: "deleteClient",
    method: "DELETE",
    path: "/v1/clients/:id",
    summary: "Delete a client and reset its live connections.",
    auth: true,
    responses: { 204: NO_CONTENT, 401: E401, 404: E404, 500: E500 },
  },
  {
    operationId: "createMapping",
    method: "POST",
    path: "/v1/mappings",
    summary: "Add a virtual host:port (or port range) mapping.",
    auth: true,
    body: "MappingCreateBody",
    responses: {
      201: { description: "Created.", schema: "Mapping" },
      400: E400,
      401: E401,
      409: E409,
      500: E500,
    },
  },
  {
    operationId: "listMappings",
    method: "GET",
    path: "/v1/mappings",
    summary: "List mappings.",
    auth: true,
    responses: { 200: { description: "Mappings.", schema: ["Mapping"] }, 401: E401 },
  },
  {
    operationId: "getMapping",
    method: "GET",
    path: "/v1/mappings/:id",
    summary: "Show one mapping.",
    auth: true,
    responses: { 200: { description: "The mapping.", schema: "Mapping" }, 401: E401, 404: E404 },
  },
  {
    operationId: "updateMapping",
    method: "PATCH",
    path: "/v1/mappings/:id",
    summary: "Change some fields of a mapping; the result is validated as a whole.",
    auth: true,
    body: "MappingPatchBody",
    responses: {
      200: { description: "The changed mapping.", schema: "Mapping" },
      400: E400,
      401: E401,
      404: E404,
      409: E409,
      500: E500,
    },
  },
  {
    operationId: "deleteMapping",
    method: "DELETE",
    path: "/v1/mappings/:id",
    summary: "Delete a mapping and reset the connections using it.",
    auth: true,
    responses: { 204: NO_CONTENT, 401: E401, 404: E404, 500: E500 },
  },
  {
    operationId: "checkMapping",
    method: "POST",
    path: "/v1/mappings/:id/check",
    summary: "Have an agent of the location really dial the internal target.",
    auth: true,
    responses: { 200: { description: "The result.", schema: "CheckResult" }, 401: E401, 404: E404 },
  },
  {
    operationId: "listConnections",
    method: "GET",
    path: "/v1/connections",
    summary: "Live streams with client, mapping, bytes each way and age.",
    auth: true,
    responses: { 200: { description: "Connections.", schema: ["Connection"] }, 401: E401 },
  },
  {
    operationId: "deleteConnection",
    method: "DELETE",
    path: "/v1/connections/:id",
    summary: "Reset one live connection.",
    auth: true,
    responses: { 204: NO_CONTENT, 401: E401, 404: E404 },
  },
  {
    operationId: "health",
    method: "GET",
    path: "/healthz",
    summary: "Liveness; no authentication.",
    auth: false,
    responses: { 200: { description: "Alive.", schema: "Health" } },
  },
  {
    operationId: "metrics",
    method: "GET",
    path: "/metrics",
    summary: "Prometheus metrics (text exposition format 0.0.4).",
    auth: true,
    responses: { 200: { description: "Metrics.", contentType: "text/plain; version=0.0.4" }, 401: E401 },
  },
  {
    operationId: "openapi",
    method: "GET",
    path: "/docs/json",
    summary: "This document; no authentication.",
    auth: false,
    responses: { 200: { description: "OpenAPI 3.1 document.", contentType: "application/json" } },
  },
] as const satisfies readonly RouteSpec[];

export type OperationId = (typeof ROUTES)[number]["operationId"];

// ---------------------------------------------------------------------------------------------
// The document

type Json = Record<string, unknown>;

function componentSchema(name: ComponentName): Json {
  const { schema, io } = COMPONENTS[name];
  const json: Json = z.toJSONSchema(schema, { io, target: "draft-2020-12" });
  delete json["$schema"];
  return json;
}

function ref(name: ComponentName): Json {
  return { $ref: `#/components/schemas/${name}` };
}

function responseObject(spec: ResponseSpec): Json {
  if (spec.schema === undefined) {
    return spec.contentType === undefined
      ? { description: spec.description }
      : { description: spec.description, content: { [spec.contentType]: { schema: {} } } };
  }
  const schema =
    typeof spec.schema === "string" ? ref(spec.schema) : { type: "array", items: ref(spec.schema[0]) };
  return { description: spec.description, content: { [spec.contentType ?? "application/json"]: { schema } } };
}

/** `/v1/mappings/:id` → `/v1/mappings/{id}`. */
export function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z0-9_]+)/g, "{$1}");
}

/** The OpenAPI 3.1 document of the admin API. */
export function buildOpenApiDocument(version: string): Json {
  const paths: Record<string, Json> = {};
  for (const route of ROUTES as readonly RouteSpec[]) {
    const params = [...route.path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => ({
      name: m[1],
      in: "path",
      required: true,
      schema: { type: "string" },
    }));
    const operation: Json = {
      operationId: route.operationId,
      summary: route.summary,
      security: route.auth ? [{ bearer: [] }] : [],
      responses: Object.fromEntries(
        Object.entries(route.responses).map(([status, spec]) => [status, responseObject(spec)]),
      ),
    };
    if (params.length > 0) operation["parameters"] = params;
    if (route.body !== undefined) {
      operation["requestBody"] = {
        required: true,
        content: { "application/json": { schema: ref(route.body) } },
      };
    }
    const key = openApiPath(route.path);
    paths[key] = { ...paths[key], [route.method.toLowerCase()]: operation };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Underpass admin API",
      version,
      description: "Registers agents, SOCKS5 clients and virtual host:port mappings of an Underpass relay.",
    },
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    security: [{ bearer: [] }],
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "The admin token." } },
      schemas: Object.fromEntries(
        Object.keys(COMPONENTS).map((n) => [n, componentSchema(n as ComponentName)]),
      ),
    },
    paths,
  };
}
