/**
 * `GET /v1/export` and `POST /v1/import[?dryRun=true]`: the whole configuration as one
 * versioned document. Secrets stay hashed, so agents and clients keep working against a relay
 * restored from it. An import is validated as a whole first (each record, then ids, token
 * hashes, usernames and overlaps together) and applied in one atomic step, or not at all.
 */
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { checkConfig } from "../store/config-check.js";
import type { AgentRecord, ClientRecord, ConfigData, MappingRecord } from "../store/store.js";
import { auditChange } from "./change-audit.js";
import type { AdminRouteOptions } from "./deps.js";
import { afterwards } from "./follow-up.js";
import { mappingAnswerOf } from "./mappings.js";
import { now } from "./records.js";
import { answers, json } from "./responses.js";
import {
  description,
  locationName,
  mappingAnswer,
  mappingProtocol,
  mappingShape,
  name,
  sameRangeLength,
} from "./schemas.js";

/** The format's name and version: an import of anything else is refused, not guessed at. */
export const CONFIG_FORMAT = "underpass-config" as const;
export const CONFIG_VERSION = 1 as const;

const isoTime = z.iso.datetime({ offset: true });
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, "expected a SHA-256 hex digest");
const id = z.string().min(1).max(64);
const lastSeen = { lastAddress: z.string().max(64).nullable().optional() };

const exportedAgent = z.strictObject({
  id,
  name,
  location: locationName,
  tokenHash: sha256,
  createdAt: isoTime,
  lastSeenAt: isoTime.nullable().optional(),
  ...lastSeen,
  // the record carries the flag only when it is set
  singleInstance: z.literal(true).optional(),
});
const exportedClient = z.strictObject({
  id,
  name,
  location: locationName,
  username: z.string().min(1).max(255),
  passwordHash: sha256,
  createdAt: isoTime,
  lastUsedAt: isoTime.nullable().optional(),
  ...lastSeen,
});
const exportedMapping = z
  .strictObject({
    id,
    ...mappingShape,
    location: locationName,
    protocol: mappingProtocol,
    description,
    createdAt: isoTime,
    updatedAt: isoTime,
  })
  .superRefine(sameRangeLength);

const documentShape = {
  format: z.literal(CONFIG_FORMAT, { error: `expected format "${CONFIG_FORMAT}"` }),
  version: z.literal(CONFIG_VERSION, { error: `this relay reads version ${CONFIG_VERSION} of the format` }),
  exportedAt: isoTime,
  agents: z.array(exportedAgent).max(100_000),
  clients: z.array(exportedClient).max(100_000),
};

/** What `POST /v1/import` takes: every mapping validated like a created one. */
export const configDocument = z
  .strictObject({ ...documentShape, mappings: z.array(exportedMapping).max(100_000) })
  .meta({
    id: "ConfigDocument",
    description: "The whole configuration; tokens and passwords as SHA-256 hashes.",
  });

/** What `GET /v1/export` answers: the same document, ports shown as `21` or `"30000-30010"`. */
export const configDocumentAnswer = z
  .strictObject({ ...documentShape, mappings: z.array(mappingAnswer) })
  .meta({ id: "ConfigDocumentExported" });

const idList = z.array(z.string()).readonly();
const kindDiff = z.strictObject({
  added: idList,
  removed: idList,
  changed: idList,
  unchanged: z.number().int(),
});

export const importAnswer = z
  .strictObject({
    dryRun: z.boolean().meta({ description: "True when nothing was changed." }),
    agents: kindDiff,
    clients: kindDiff,
    mappings: kindDiff,
  })
  .meta({ id: "ImportResult", description: "What the import changes (dry run) or changed, by id." });

export const importQuery = z.strictObject({
  dryRun: z
    .enum(["true", "false"])
    .optional()
    .transform((v) => v === "true")
    .meta({ description: "Only answer what would change." }),
});

type Diff = z.output<typeof kindDiff>;

/** A record as a diff compares it: without when and where it was last seen, which is no configuration. */
function configOf(r: object): string {
  const { lastSeenAt: _s, lastUsedAt: _u, lastAddress: _a, ...rest } = r as Record<string, unknown>;
  return JSON.stringify(rest);
}

function diff<T extends { id: string }>(before: readonly T[], after: readonly T[]): Diff {
  const old = new Map(before.map((r) => [r.id, configOf(r)]));
  const next = new Map(after.map((r) => [r.id, configOf(r)]));
  const added = after.filter((r) => !old.has(r.id)).map((r) => r.id);
  const removed = before.filter((r) => !next.has(r.id)).map((r) => r.id);
  const changed = after.filter((r) => old.has(r.id) && old.get(r.id) !== next.get(r.id)).map((r) => r.id);
  return { added, removed, changed, unchanged: after.length - added.length - changed.length };
}

/** Drops optional fields that are absent, so a record and its export compare equal. */
function record<T extends object>(r: T): T {
  return Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as T;
}

function toConfig(doc: z.output<typeof configDocument>): ConfigData {
  return {
    agents: doc.agents.map((a) => record<AgentRecord>(a)),
    clients: doc.clients.map((c) => record<ClientRecord>(c)),
    mappings: doc.mappings.map((m) => record<MappingRecord>(m)),
  };
}

export const backupRoutes: FastifyPluginAsyncZod<AdminRouteOptions> = async (app, { store, deps }) => {
  app.get(
    "/v1/export",
    {
      schema: {
        operationId: "exportConfig",
        summary: "The whole configuration as one versioned document (secrets stay hashed).",
        response: answers({ 200: json("The configuration.", configDocumentAnswer) }),
      },
    },
    async (req) => {
      const config = await store.exportConfig();
      auditChange(deps, req, {
        event: "admin.config.exported",
        message: `configuration exported: ${config.agents.length} agents, ${config.clients.length} clients, ${config.mappings.length} mappings`,
      });
      return {
        format: CONFIG_FORMAT,
        version: CONFIG_VERSION,
        exportedAt: now(),
        agents: config.agents.map((a) => record(a)),
        clients: config.clients.map((c) => record(c)),
        mappings: config.mappings.map(mappingAnswerOf),
      };
    },
  );

  app.post(
    "/v1/import",
    {
      schema: {
        operationId: "importConfig",
        summary:
          "Replace the whole configuration from an export, all or nothing; ?dryRun=true answers the diff.",
        querystring: importQuery,
        body: configDocument,
        response: answers({ 200: json("What changed (or would).", importAnswer) }, 400, 409),
      },
    },
    async (req) => {
      const next = toConfig(req.body);
      const dryRun = req.query.dryRun;
      checkConfig(next); // 409 before anything is written, dry run or not
      const before = await store.exportConfig();
      const changes = {
        agents: diff(before.agents.map(record), next.agents),
        clients: diff(before.clients.map(record), next.clients),
        mappings: diff(before.mappings.map(record), next.mappings),
      };
      if (dryRun) return { dryRun, ...changes };
      await store.importConfig(next);
      req.log.info(
        { agents: next.agents.length, clients: next.clients.length, mappings: next.mappings.length },
        "configuration imported",
      );
      auditChange(deps, req, {
        event: "admin.config.imported",
        message: `configuration imported: ${next.agents.length} agents, ${next.clients.length} clients, ${next.mappings.length} mappings`,
        changes,
      });
      // what is gone or changed stops carrying traffic, as a delete or a rotation would
      afterwards(req.log, "applying the imported configuration to live traffic", () => {
        for (const id of [...changes.agents.removed, ...changes.agents.changed])
          deps.tunnels.disconnectAgent(id, "configuration imported");
        for (const id of [...changes.clients.removed, ...changes.clients.changed])
          deps.connections.killByClient(id);
        for (const id of [...changes.mappings.removed, ...changes.mappings.changed])
          deps.connections.killByMapping(id);
      });
      return { dryRun, ...changes };
    },
  );
};
