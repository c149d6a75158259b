/** `/v1/agents`: register, list and delete on-premise agents. */
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { NotFoundError } from "../../shared/errors.js";
import type { AgentRecord } from "../store/store.js";
import type { AdminRouteOptions } from "./deps.js";
import { afterwards } from "./follow-up.js";
import { newId, now } from "./records.js";
import { answers, idParams, json, noContent } from "./responses.js";
import { agentAnswer, agentCreateBody, agentCreated } from "./schemas.js";
import { generateSecret, hashSecret } from "./secrets.js";

export const agentRoutes: FastifyPluginAsyncZod<AdminRouteOptions> = async (app, { store, deps }) => {
  app.post(
    "/v1/agents",
    {
      schema: {
        operationId: "createAgent",
        summary: "Register an agent; its token is shown once.",
        body: agentCreateBody,
        response: answers({ 201: json("Created.", agentCreated) }, 400),
      },
    },
    async (req, reply) => {
      const token = generateSecret("upa");
      const agent: AgentRecord = {
        id: newId("ag"),
        name: req.body.name,
        location: req.body.location,
        tokenHash: hashSecret(token),
        createdAt: now(),
      };
      await store.addAgent(agent);
      req.log.info({ agentId: agent.id, location: agent.location }, "agent created");
      const { id, name, location, createdAt } = agent;
      return reply.code(201).send({ id, name, location, token, createdAt });
    },
  );

  app.get(
    "/v1/agents",
    {
      schema: {
        operationId: "listAgents",
        summary: "List agents with their live tunnel status.",
        response: answers({ 200: json("Agents.", z.array(agentAnswer)) }),
      },
    },
    async () =>
      (await store.listAgents()).map(({ id, name, location, createdAt }) => {
        const { connected, connectedAt, remoteAddress, version, tunnels } = deps.tunnels.statusOf(id);
        return { id, name, location, createdAt, connected, connectedAt, remoteAddress, version, tunnels };
      }),
  );

  app.delete(
    "/v1/agents/:id",
    {
      schema: {
        operationId: "deleteAgent",
        summary: "Delete an agent: its token stops working and live tunnels are closed.",
        params: idParams,
        response: answers({ 204: noContent }, 404),
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      if (!(await store.deleteAgent(id))) throw new NotFoundError(`no agent ${id}`);
      req.log.info({ agentId: id }, "agent deleted");
      afterwards(req.log, "closing the agent's tunnels", () =>
        deps.tunnels.disconnectAgent(id, "agent deleted"),
      );
      return reply.code(204).send();
    },
  );
};
