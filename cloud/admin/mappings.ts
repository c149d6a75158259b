/** `/v1/mappings`: the virtual host:port (or port range) allowlist, and reachability checks. */
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { NotFoundError, UnderpassError } from "../../shared/errors.js";
import { type MappingRecord, type Store, sameRoute } from "../store/store.js";
import { auditChange } from "./change-audit.js";
import type { AdminRouteOptions } from "./deps.js";
import { validationError } from "./error-answer.js";
import { afterwards } from "./follow-up.js";
import { newId, now } from "./records.js";
import { answers, idParams, json, noContent } from "./responses.js";
import {
  type CheckAnswer,
  checkAnswer,
  issuesOf,
  type MappingAnswer,
  type MappingFields,
  mappingAnswer,
  mappingCreateBody,
  mappingPatchBody,
  mappingToInput,
  mergeMappingPatch,
} from "./schemas.js";

export const mappingRoutes: FastifyPluginAsyncZod<AdminRouteOptions> = async (app, { store, deps }) => {
  app.post(
    "/v1/mappings",
    {
      schema: {
        operationId: "createMapping",
        summary: "Add a virtual host:port (or port range) mapping.",
        body: mappingCreateBody,
        response: answers({ 201: json("Created.", mappingAnswer) }, 400, 409),
      },
    },
    async (req, reply) => {
      const at = now();
      const mapping: MappingRecord = { id: newId("mp"), ...req.body, createdAt: at, updatedAt: at };
      await store.addMapping(mapping); // refuses an overlap (409) in the same step as the write
      req.log.info(
        { mappingId: mapping.id, location: mapping.location, virtualHost: mapping.virtualHost },
        "mapping created",
      );
      auditChange(deps, req, {
        event: "admin.mapping.created",
        message: `mapping ${mapping.virtualHost}:${mappingToInput(mapping).virtualPort} → ${mapping.internalHost}:${mappingToInput(mapping).internalPort} created in location ${mapping.location}`,
        mappingId: mapping.id,
        after: mappingAnswerOf(mapping),
      });
      return reply.code(201).header("location", `/v1/mappings/${mapping.id}`).send(mappingAnswerOf(mapping));
    },
  );

  app.get(
    "/v1/mappings",
    {
      schema: {
        operationId: "listMappings",
        summary: "List mappings.",
        response: answers({ 200: json("Mappings.", z.array(mappingAnswer)) }),
      },
    },
    async () => (await store.listMappings()).map(mappingAnswerOf),
  );

  app.get(
    "/v1/mappings/:id",
    {
      schema: {
        operationId: "getMapping",
        summary: "Show one mapping.",
        params: idParams,
        response: answers({ 200: json("The mapping.", mappingAnswer) }, 404),
      },
    },
    async (req) => mappingAnswerOf(await mappingOr404(store, req.params.id)),
  );

  app.patch(
    "/v1/mappings/:id",
    {
      schema: {
        operationId: "updateMapping",
        summary: "Change some fields of a mapping; the result is validated as a whole.",
        params: idParams,
        body: mappingPatchBody,
        response: answers({ 200: json("The changed mapping.", mappingAnswer) }, 400, 404, 409),
      },
    },
    async (req) => {
      const { id } = req.params;
      const before = await mappingOr404(store, id);
      const merged = mergeMappingPatch(before, req.body);
      if (!merged.success) throw validationError(issuesOf(merged.error));
      if (sameFields(before, merged.data)) return mappingAnswerOf(before);
      const after: MappingRecord = { id, ...merged.data, createdAt: before.createdAt, updatedAt: now() };
      await store.replaceMapping(after); // 404 if deleted meanwhile, 409 on an overlap
      req.log.info(
        { mappingId: id, location: after.location, virtualHost: after.virtualHost },
        "mapping changed",
      );
      auditChange(deps, req, {
        event: "admin.mapping.changed",
        message: `mapping ${id} changed`,
        mappingId: id,
        before: mappingAnswerOf(before),
        after: mappingAnswerOf(after),
      });
      // A description is not routing: live transfers keep going when only that changed.
      if (!sameRoute(before, after)) {
        afterwards(req.log, "resetting the mapping's connections", () => deps.connections.killByMapping(id));
      }
      return mappingAnswerOf(after);
    },
  );

  app.delete(
    "/v1/mappings/:id",
    {
      schema: {
        operationId: "deleteMapping",
        summary: "Delete a mapping and reset the connections using it.",
        params: idParams,
        response: answers({ 204: noContent }, 404),
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      const before = await store.getMapping(id);
      if (!(await store.deleteMapping(id))) throw new NotFoundError(`no mapping ${id}`);
      req.log.info({ mappingId: id }, "mapping deleted");
      auditChange(deps, req, {
        event: "admin.mapping.deleted",
        message: `mapping ${id} deleted; connections using it are reset`,
        mappingId: id,
        before: before === undefined ? null : mappingAnswerOf(before),
      });
      afterwards(req.log, "resetting the mapping's connections", () => deps.connections.killByMapping(id));
      return reply.code(204).send();
    },
  );

  app.post(
    "/v1/mappings/:id/check",
    {
      schema: {
        operationId: "checkMapping",
        summary: "Have an agent of the location really dial the internal target.",
        params: idParams,
        response: answers({ 200: json("The result.", checkAnswer) }, 404),
      },
    },
    async (req): Promise<CheckAnswer> => {
      const mapping = await mappingOr404(store, req.params.id);
      try {
        const { reachable, latencyMs, error } = await deps.reachability.check(mapping);
        return {
          reachable,
          ...(latencyMs === undefined ? {} : { latencyMs }),
          ...(error === undefined ? {} : { error }),
        };
      } catch (err) {
        // A coded failure (no agent, unreachable, refused) is an answer to the question asked.
        if (err instanceof UnderpassError && err.code !== UnderpassError.spec.code) {
          return { reachable: false, error: err.message };
        }
        throw err;
      }
    },
  );
};

export async function mappingOr404(store: Store, id: string): Promise<MappingRecord> {
  const m = await store.getMapping(id);
  if (m === undefined) throw new NotFoundError(`no mapping ${id}`);
  return m;
}

/** The answer form of a mapping: ports as `21` or `"30000-30010"`. */
export function mappingAnswerOf(m: MappingRecord): MappingAnswer {
  return { id: m.id, ...mappingToInput(m), createdAt: m.createdAt, updatedAt: m.updatedAt };
}

function sameFields(a: MappingFields, b: MappingFields): boolean {
  return sameRoute(a, b) && a.description === b.description;
}
