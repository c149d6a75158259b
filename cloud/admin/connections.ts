/** `/v1/connections`: the live SOCKS streams of this relay, and resetting one of them. */
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { NotFoundError } from "../../shared/errors.js";
import { auditChange } from "./change-audit.js";
import type { AdminRouteOptions } from "./deps.js";
import { answers, idParams, json, noContent } from "./responses.js";
import { connectionAnswer } from "./schemas.js";

export const connectionRoutes: FastifyPluginAsyncZod<AdminRouteOptions> = async (app, { deps }) => {
  app.get(
    "/v1/connections",
    {
      schema: {
        operationId: "listConnections",
        summary: "Live streams with client, mapping, bytes each way and age.",
        response: answers({ 200: json("Connections.", z.array(connectionAnswer)) }),
      },
    },
    async () => deps.connections.list(),
  );

  app.delete(
    "/v1/connections/:id",
    {
      schema: {
        operationId: "deleteConnection",
        summary: "Reset one live connection.",
        params: idParams,
        response: answers({ 204: noContent }, 404),
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      const before = deps.connections.list().find((c) => c.id === id);
      if (!deps.connections.kill(id)) throw new NotFoundError(`no connection ${id}`);
      req.log.info({ connectionId: id }, "connection reset by the admin API");
      auditChange(deps, req, {
        event: "admin.connection.killed",
        message: `connection ${id} reset`,
        connectionId: id,
        ...(before
          ? {
              clientId: before.clientId ?? undefined,
              client: before.clientName,
              mappingId: before.mappingId,
              agentId: before.agentId,
              virtualHost: before.virtualHost,
              virtualPort: before.virtualPort,
              bytesUp: before.bytesUp,
              bytesDown: before.bytesDown,
            }
          : {}),
      });
      return reply.code(204).send();
    },
  );
};
