/** `GET /v1/audit`: the audit trail, newest first, filtered and paged by cursor. */
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { AdminRouteOptions } from "./deps.js";
import { answers, json } from "./responses.js";

/** An ISO time, or a number of ms since the epoch. */
const instant = z
  .string()
  .refine((s) => !Number.isNaN(/^\d+$/.test(s) ? Number(s) : Date.parse(s)), "expected an ISO 8601 time")
  .transform((s) => (/^\d+$/.test(s) ? Number(s) : Date.parse(s)));

export const auditQuery = z.strictObject({
  since: instant.optional().meta({ description: "Inclusive: ISO 8601 time (or ms since the epoch)." }),
  until: instant.optional().meta({ description: "Exclusive: ISO 8601 time (or ms since the epoch)." }),
  event: z.string().max(128).optional().meta({ description: "One event name, e.g. socks.denied." }),
  client: z.string().max(128).optional().meta({ description: "A client's id or name." }),
  agent: z.string().max(128).optional().meta({ description: "An agent's id or name." }),
  mapping: z.string().max(128).optional().meta({ description: "A mapping's id." }),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().max(32).optional().meta({ description: "The nextCursor of the page before." }),
});

export const auditEvent = z
  .looseObject({
    seq: z.number().int(),
    time: z.string(),
    event: z.string(),
    message: z.string(),
  })
  .meta({
    id: "AuditEvent",
    description: "One event; fields beyond these are its details (never a secret).",
  });

export const auditPage = z
  .strictObject({
    events: z.array(auditEvent).readonly(),
    nextCursor: z.string().nullable().meta({ description: "Pass as cursor for the next, older page." }),
  })
  .meta({ id: "AuditPage" });

export const auditRoutes: FastifyPluginAsyncZod<AdminRouteOptions> = async (app, { deps }) => {
  app.get(
    "/v1/audit",
    {
      schema: {
        operationId: "listAudit",
        summary: "Audit events, newest first: denials, admin changes, agents, kills and rotations.",
        querystring: auditQuery,
        response: answers({ 200: json("A page of events.", auditPage) }, 400),
      },
    },
    async (req) => {
      const q = req.query;
      return deps.audit.query({
        limit: q.limit,
        ...(q.since === undefined ? {} : { since: q.since }),
        ...(q.until === undefined ? {} : { until: q.until }),
        ...(q.event === undefined ? {} : { event: q.event }),
        ...(q.client === undefined ? {} : { client: q.client }),
        ...(q.agent === undefined ? {} : { agent: q.agent }),
        ...(q.mapping === undefined ? {} : { mapping: q.mapping }),
        ...(q.cursor === undefined ? {} : { cursor: q.cursor }),
      });
    },
  );
};
