/**
 * Zod schemas validated at the edge (admin API bodies, CLI flags, config) and shared by both
 * sides. Schemas normalise as they validate: ports become `PortRange`s, host names become the
 * canonical form the SOCKS server compares against (lower-case, IPv6 without brackets).
 *
 * The admin API's answers are here too, so that one module, free of any server code, holds the
 * whole wire format: the routes validate and serialize with these schemas, the OpenAPI document
 * is generated from them, and the CLI and the console take their types from the same place.
 * Schemas with an `id` become named components of the document.
 */
import { z } from "zod";
import { normalizeHost, hostProblem as sharedHostProblem } from "../../shared/net/host.js";
import { formatPortRange, type PortRange, parsePortRange, rangeSize } from "../../shared/net/port-range.js";
import type { MappingRecord } from "../store/store.js";

/** An issue as the admin API and the CLI report it: a dotted path into the input and a message. */
export interface Issue {
  readonly path: string;
  readonly message: string;
}

/** What an Issue is made of: a zod issue, or the same carried in a fastify validation error. */
export interface IssueParts {
  readonly code: string;
  readonly path: readonly PropertyKey[];
  readonly message: string;
  /** The unknown keys of an `unrecognized_keys` issue. */
  readonly keys?: readonly string[];
}

/** Flatten issues; an unknown key becomes an issue on its own path. */
export function flattenIssues(parts: readonly IssueParts[]): Issue[] {
  const out: Issue[] = [];
  for (const issue of parts) {
    const path = issue.path.map(String);
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys ?? []) {
        out.push({ path: [...path, key].join("."), message: "unknown field" });
      }
    } else {
      out.push({ path: path.join("."), message: issue.message });
    }
  }
  return out;
}

/** `flattenIssues` of a zod error. */
export function issuesOf(error: z.ZodError): Issue[] {
  return flattenIssues(error.issues);
}

/** A body must be an object; other issues of the object itself keep zod's message. */
const OBJECT = {
  error: (issue: { code?: string }) => (issue.code === "invalid_type" ? "expected a JSON object" : undefined),
};

/** "required" when the field is missing, "expected <what>" otherwise. */
function expected(what: string) {
  return (issue: { input?: unknown }) => (issue.input === undefined ? "required" : `expected ${what}`);
}

// ---------------------------------------------------------------------------------------------
// Ports

/** `21`, `"21"` or `"30000-30010"`, turned into a PortRange. */
export const portSpec = z
  .union([z.number(), z.string()], { error: expected('a port (1-65535) or a range like "30000-30010"') })
  .meta({
    description: 'A port 1-65535, or an inclusive range "start-end" such as "30000-30010".',
    examples: [21, "30000-30010"],
    oneOf: [
      { type: "integer", minimum: 1, maximum: 65535 },
      { type: "string", pattern: "^\\d{1,5}(-\\d{1,5})?$" },
    ],
  })
  .transform((input, ctx): PortRange => {
    const range = parsePortRange(input);
    if (typeof range === "string") {
      ctx.addIssue({ code: "custom", message: range, input });
      return z.NEVER;
    }
    return range;
  });

// ---------------------------------------------------------------------------------------------
// Host names

/** RFC 1035 §2.3.4: 253 characters in presentation form (255 octets on the wire). */
const MAX_DNS_NAME = 253;

/**
 * Why `input` is not a DNS name, an IPv4 or an IPv6 literal (IPv6 may be bracketed), or
 * `undefined` when it is one. The rules are shared/net/host.ts's, the one host validator; the
 * canonical form is its `normalizeHost`, the same function the SOCKS side applies to the hosts
 * clients ask for.
 */
export function hostProblem(input: string): string | undefined {
  return sharedHostProblem(input);
}

/** A DNS name, IPv4 or IPv6 literal (IPv6 may be bracketed), in `normalizeHost`'s canonical form. */
export const hostName = z
  .string({ error: expected("a host name or an IP address") })
  .meta({
    description:
      "A DNS name, an IPv4 address or an IPv6 address (brackets allowed); stored lower-case, IPv6 in its shortest form.",
    examples: ["ftp.example.internal", "10.0.0.5", "2001:db8::5"],
    maxLength: MAX_DNS_NAME + 2,
  })
  .transform((input, ctx): string => {
    const problem = hostProblem(input);
    if (problem !== undefined) {
      ctx.addIssue({ code: "custom", message: problem, input });
      return z.NEVER;
    }
    return normalizeHost(input);
  });

// ---------------------------------------------------------------------------------------------
// Names and the rest

/** A location groups agents, clients and mappings; a client reaches only its own location. */
export const locationName = z
  .string({ error: expected("a string") })
  .regex(/^[A-Za-z0-9._-]{1,64}$/, "a location is 1-64 characters of A-Z a-z 0-9 . _ -")
  .meta({ description: "Location: 1-64 characters of A-Z a-z 0-9 . _ -", examples: ["default", "plant-1"] });

/** `locationName`, `"default"` when absent. */
export const location = locationName.default("default");

// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
const CONTROL = /[\x00-\x1f\x7f]/;

/** A human name for an agent or a client, 1-128 characters, no control characters. */
export const name = z
  .string({ error: expected("a string") })
  .trim()
  .min(1, "name is empty")
  .max(128, "name is longer than 128 characters")
  .refine((s) => !CONTROL.test(s), "name contains control characters")
  .meta({ description: "A human name, 1-128 characters.", examples: ["ERP integration"] });

/** Free text, up to 1024 characters. */
export const description = z
  .string({ error: expected("a string") })
  .max(1024, "description is longer than 1024 characters")
  .meta({ description: "Free text, up to 1024 characters." });

/** `ftp` mappings are FTP control ports; the relay may treat their data channels specially. */
export const mappingProtocol = z.enum(["tcp", "ftp"], { error: 'expected "tcp" or "ftp"' });

// ---------------------------------------------------------------------------------------------
// Admin API bodies

/** An agent's `singleInstance` flag (README: agent identity). */
const singleInstance = z.boolean({ error: expected("true or false") }).meta({
  description:
    "Only one instance (agent process) may hold tunnels at once: while one is connected, another one's hello is refused (GOAWAY SECOND_INSTANCE). Default false: a second instance is logged and audited, and let in.",
});

export const agentCreateBody = z
  .strictObject({ name, location, singleInstance: singleInstance.optional() }, OBJECT)
  .meta({ id: "AgentCreate" });
export type AgentCreateBody = z.output<typeof agentCreateBody>;

/** `PATCH /v1/agents/:id`: the fields that can change without a new token. */
export const agentPatchBody = z
  .strictObject({ name: name.optional(), singleInstance: singleInstance.optional() }, OBJECT)
  .meta({ id: "AgentPatch" });
export type AgentPatchBody = z.output<typeof agentPatchBody>;

export const clientCreateBody = z.strictObject({ name, location }, OBJECT).meta({ id: "ClientCreate" });
export type ClientCreateBody = z.output<typeof clientCreateBody>;

/** The fields of a mapping, validated and normalised. */
export type MappingFields = Omit<MappingRecord, "id" | "createdAt" | "updatedAt">;

/** The routing fields of a mapping as the API takes them (hosts checked, ports parsed). */
export const mappingShape = {
  virtualHost: hostName,
  virtualPort: portSpec,
  internalHost: hostName,
  internalPort: portSpec,
};

/** Both sides of a range have the same length; the issue is reported on `internalPort`. */
export function sameRangeLength(
  m: { virtualPort: PortRange; internalPort: PortRange },
  ctx: z.RefinementCtx,
): void {
  const v = rangeSize(m.virtualPort);
  const i = rangeSize(m.internalPort);
  if (v !== i) {
    ctx.addIssue({
      code: "custom",
      path: ["internalPort"],
      message: `covers ${i} port(s) but virtualPort covers ${v}; both sides of a range have the same length`,
    });
  }
}

/** `POST /v1/mappings`: both sides of a range have the same length (the issue is on `internalPort`). */
export const mappingCreateBody = z
  .strictObject(
    {
      ...mappingShape,
      location,
      protocol: mappingProtocol.default("tcp"),
      description: description.default(""),
    },
    OBJECT,
  )
  .superRefine(sameRangeLength)
  .meta({ id: "MappingCreate" });
export type MappingCreateBody = z.output<typeof mappingCreateBody>;

/** `PATCH /v1/mappings/:id`: any subset of the create fields; unknown fields are an error. */
export const mappingPatchBody = z
  .strictObject(
    {
      virtualHost: hostName.optional(),
      virtualPort: portSpec.optional(),
      internalHost: hostName.optional(),
      internalPort: portSpec.optional(),
      location: locationName.optional(),
      protocol: mappingProtocol.optional(),
      description: description.optional(),
    },
    OBJECT,
  )
  .meta({ id: "MappingPatch" });
export type MappingPatchBody = z.output<typeof mappingPatchBody>;

/** The create body that would produce `m` (ports shown as `21` or `"30000-30010"`). */
export function mappingToInput(m: MappingFields): Required<z.input<typeof mappingCreateBody>> {
  return {
    virtualHost: m.virtualHost,
    virtualPort: formatPortRange(m.virtualPort),
    internalHost: m.internalHost,
    internalPort: formatPortRange(m.internalPort),
    location: m.location,
    protocol: m.protocol,
    description: m.description,
  };
}

/**
 * Apply a PATCH body to the current fields: the patch is checked on its own (unknown fields,
 * bad values), then the merged mapping is validated as a whole like a create body.
 */
export function applyMappingPatch(
  current: MappingFields,
  patch: unknown,
):
  | { success: true; data: MappingFields; error?: never }
  | { success: false; data?: never; error: z.ZodError } {
  const parsed = mappingPatchBody.safeParse(patch);
  if (!parsed.success) return { success: false, error: parsed.error };
  return mergeMappingPatch(current, parsed.data);
}

/** A validated PATCH body over the current fields, the result validated as a whole. */
export function mergeMappingPatch(current: MappingFields, patch: MappingPatchBody) {
  const changes = Object.fromEntries(Object.entries(patch).filter(([, value]) => value !== undefined));
  return mappingCreateBody.safeParse(mappingToInput({ ...current, ...changes }));
}

// ---------------------------------------------------------------------------------------------
// Admin API answers. Strict: a handler that returns a field its schema lacks (a hash, say)
// fails serialization with a 500 instead of sending it.

/** ISO 8601 in UTC or with an offset, as the store keeps its times. */
const isoTime = z.iso.datetime({ offset: true });
const portAnswer = z
  .union([z.number().int(), z.string()])
  .meta({ description: 'A single port, or a range "start-end".', examples: [21, "30000-30010"] });

export const errorAnswer = z
  .strictObject({
    error: z.string().meta({ description: "Stable code, UP_ERR_*.", examples: ["UP_ERR_VALIDATION"] }),
    message: z.string(),
    issues: z.array(z.strictObject({ path: z.string(), message: z.string() })).optional(),
    conflictsWith: z.string().optional().meta({ description: "409 only: id of the overlapping mapping." }),
  })
  .meta({ id: "Error", description: "Every error answer has this form." });
export type ErrorAnswer = z.output<typeof errorAnswer>;

const registered = { id: z.string(), name: z.string(), location: z.string(), createdAt: isoTime };

export const agentCreated = z
  .strictObject({
    ...registered,
    token: z.string().meta({ description: "The agent token (UNDERPASS_AGENT_TOKEN); shown only here." }),
  })
  .meta({ id: "AgentCreated" });
export type AgentCreated = z.output<typeof agentCreated>;

/** One live tunnel of an agent; the same shape on every relay of a cluster. */
export const agentLink = z
  .strictObject({
    relayId: z.string().meta({ description: "The relay that holds the tunnel." }),
    tunnelId: z.string(),
    remoteAddress: z.string().meta({ description: "`address:port` the tunnel came from." }),
    hostName: z
      .string()
      .nullable()
      .meta({ description: "The agent's host name; null for an agent that does not send it." }),
    instanceId: z
      .string()
      .nullable()
      .meta({ description: "Random id of the agent process; tunnels of one process share it." }),
    version: z.string().meta({ description: "Agent software version." }),
    connectedAt: isoTime,
  })
  .meta({ id: "AgentLink" });
export type AgentLink = z.output<typeof agentLink>;

export const agentAnswer = z
  .strictObject({
    ...registered,
    singleInstance: z.boolean().meta({ description: "A second instance's hello is refused." }),
    connected: z.boolean(),
    connectedAt: isoTime.nullable(),
    remoteAddress: z.string().nullable(),
    version: z.string().nullable(),
    tunnels: z.number().int().meta({ description: "Live tunnels of the agent (it may keep a pool)." }),
    lastSeenAt: isoTime.nullable().meta({ description: "When a tunnel of the agent last came or went." }),
    lastAddress: z.string().nullable().meta({ description: "The source address of that tunnel." }),
    links: z.array(agentLink).meta({
      description:
        "Each live tunnel on every relay of the cluster, oldest first: relay, source address, host name, instance.",
    }),
  })
  .meta({ id: "Agent" });
export type AgentAnswer = z.output<typeof agentAnswer>;

const socksUsername = z.string().meta({ description: "SOCKS5 username (RFC 1929)." });

export const clientCreated = z
  .strictObject({
    ...registered,
    username: socksUsername,
    password: z.string().meta({ description: "SOCKS5 password (RFC 1929); shown only here." }),
  })
  .meta({ id: "ClientCreated" });
export type ClientCreated = z.output<typeof clientCreated>;

export const clientAnswer = z
  .strictObject({
    ...registered,
    username: socksUsername,
    lastUsedAt: isoTime.nullable().meta({ description: "When the client last authenticated." }),
    lastAddress: z.string().nullable().meta({ description: "Its source address then." }),
  })
  .meta({ id: "Client" });
export type ClientAnswer = z.output<typeof clientAnswer>;

export const mappingAnswer = z
  .strictObject({
    id: z.string(),
    virtualHost: z.string(),
    virtualPort: portAnswer,
    internalHost: z.string(),
    internalPort: portAnswer,
    location: z.string(),
    protocol: mappingProtocol,
    description: z.string(),
    createdAt: isoTime,
    updatedAt: isoTime,
  })
  .meta({ id: "Mapping" });
export type MappingAnswer = z.output<typeof mappingAnswer>;

export const checkAnswer = z
  .strictObject({ reachable: z.boolean(), latencyMs: z.number().optional(), error: z.string().optional() })
  .meta({ id: "CheckResult" });
export type CheckAnswer = z.output<typeof checkAnswer>;

export const connectionAnswer = z
  .strictObject({
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
    relayId: z.string().meta({ description: "The relay of the cluster that carries it." }),
  })
  .meta({ id: "Connection" });
export type ConnectionAnswer = z.output<typeof connectionAnswer>;

export const relayAnswer = z
  .strictObject({
    id: z.string(),
    self: z.boolean().meta({ description: "The relay that answers." }),
    tunnelUrl: z
      .string()
      .nullable()
      .meta({ description: "The tunnel URL agents learn; null: not advertised." }),
    adminUrl: z.string().nullable().meta({ description: "Where the other relays reach its admin API." }),
    addresses: z
      .record(z.string(), z.string())
      .meta({ description: "host:port it listens on, by listener." }),
    version: z.string(),
    startedAt: isoTime.meta({ description: "Up since." }),
    heartbeatAt: isoTime.meta({ description: "Its last heartbeat, on the database's clock." }),
    live: z.boolean().meta({ description: "Its heartbeat is within UNDERPASS_RELAY_LIVE_MS." }),
    agents: z.number().int().meta({ description: "Agents with a tunnel to it, at its last heartbeat." }),
    connections: z.number().int().meta({ description: "Connections it carried at its last heartbeat." }),
  })
  .meta({ id: "Relay" });
export type RelayAnswer = z.output<typeof relayAnswer>;

/** What one relay tells another of its live state (the cluster's merged view). */
export const relayStateAnswer = z
  .strictObject({
    relayId: z.string(),
    connections: z.array(connectionAnswer),
    links: z.array(agentLink.extend({ agentId: z.string() })),
  })
  .meta({ id: "RelayState" });
export type RelayStateAnswer = z.output<typeof relayStateAnswer>;

export const healthAnswer = z
  .strictObject({
    status: z.literal("ok"),
    version: z.string(),
    store: z.enum(["available", "unavailable"]).optional().meta({
      description: "A shared database store: whether it takes writes now (reads come from memory).",
    }),
  })
  .meta({ id: "Health" });
export type HealthAnswer = z.output<typeof healthAnswer>;
