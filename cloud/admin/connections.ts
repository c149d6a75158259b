/**
 * `/v1/connections`: the live SOCKS streams of every relay of the cluster, and resetting one of
 * them wherever it lives. Relays that did not answer in time are named in the
 * `underpass-missing-relays` header; the others' connections are listed all the same.
 */
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { NotFoundError } from "../../shared/errors.js";
import { auditChange } from "./change-audit.js";
import { clusterStates, MISSING_RELAYS_HEADER } from "./cluster.js";
import type { AdminRouteOptions, ConnectionInfo } from "./deps.js";
import { answers, idParams, json, noContent } from "./responses.js";
import { connectionAnswer } from "./schemas.js";

export const connectionRoutes: FastifyPluginAsyncZod<AdminRouteOptions> = async (app, { deps }) => {
  app.get(
    "/v1/connections",
    {
      schema: {
        operationId: "listConnections",
        summary: "Live streams of every relay with client, mapping, bytes each way, age and relay.",
        response: answers({ 200: json("Connections.", z.array(connectionAnswer)) }),
      },
    },
    async (_req, reply) => {
      const cluster = await clusterStates(deps);
      if (cluster.missing.length > 0) reply.header(MISSING_RELAYS_HEADER, cluster.missing.join(","));
      return cluster.states.flatMap((s) => s.connections);
    },
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
      let before: ConnectionInfo | undefined = deps.connections.list().find((c) => c.id === id);
      let relayId = deps.cluster.selfId;
      if (!deps.connections.kill(id)) {
        // another relay's, perhaps: it answers with what the connection was
        const killed = await deps.cluster.killOnPeers(id);
        if (killed.value === null) {
          const unsure =
            killed.missing.length > 0 ? `; relays ${killed.missing.join(", ")} did not answer` : "";
          throw new NotFoundError(`no connection ${id}${unsure}`);
        }
        before = killed.value;
        relayId = killed.value.relayId;
      }
      req.log.info({ connectionId: id, relayId }, "connection reset by the admin API");
      auditChange(deps, req, {
        event: "admin.connection.killed",
        message: `connection ${id} reset on relay ${relayId}`,
        connectionId: id,
        connectionRelayId: relayId,
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
