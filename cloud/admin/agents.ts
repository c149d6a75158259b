/** `/v1/agents`: register, list, rotate and delete on-premise agents. */
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { NotFoundError } from "../../shared/errors.js";
import type { AgentRecord } from "../store/store.js";
import { auditChange } from "./change-audit.js";
import { clusterStates, MISSING_RELAYS_HEADER } from "./cluster.js";
import type { AdminRouteOptions } from "./deps.js";
import { afterwards } from "./follow-up.js";
import { newId, now } from "./records.js";
import { answers, idParams, json, noContent } from "./responses.js";
import { type AgentLink, agentAnswer, agentCreateBody, agentCreated } from "./schemas.js";
import { generateSecret, hashSecret } from "./secrets.js";

/** What the caller sees of a new or rotated agent: its token, this once. */
function created(agent: AgentRecord, token: string) {
  const { id, name, location, createdAt } = agent;
  return { id, name, location, token, createdAt };
}

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
      auditChange(deps, req, {
        event: "admin.agent.created",
        message: `agent ${agent.name} created in location ${agent.location}`,
        agentId: agent.id,
        after: agent,
      });
      return reply.code(201).send(created(agent, token));
    },
  );

  app.get(
    "/v1/agents",
    {
      schema: {
        operationId: "listAgents",
        summary:
          "List agents with their live tunnels on every relay of the cluster and where they were last seen from.",
        response: answers({ 200: json("Agents.", z.array(agentAnswer)) }),
      },
    },
    async (_req, reply) => {
      const [agents, cluster] = await Promise.all([store.listAgents(), clusterStates(deps)]);
      if (cluster.missing.length > 0) reply.header(MISSING_RELAYS_HEADER, cluster.missing.join(","));
      const links = new Map<string, AgentLink[]>();
      for (const state of cluster.states) {
        for (const { agentId, ...link } of state.links) {
          const list = links.get(agentId) ?? [];
          list.push(link);
          links.set(agentId, list);
        }
      }
      return agents.map(({ id, name, location, createdAt, lastSeenAt, lastAddress }) => {
        const local = deps.tunnels.statusOf(id);
        const mine = links.get(id) ?? [];
        // this relay's own tunnel first; else the agent's oldest on any relay
        const first = [...mine].sort((a, b) => (a.connectedAt < b.connectedAt ? -1 : 1))[0];
        return {
          id,
          name,
          location,
          createdAt,
          connected: mine.length > 0,
          connectedAt: local.connectedAt ?? first?.connectedAt ?? null,
          remoteAddress: local.remoteAddress ?? first?.remoteAddress ?? null,
          version: local.version ?? first?.version ?? null,
          tunnels: mine.length,
          lastSeenAt: lastSeenAt ?? null,
          lastAddress: lastAddress ?? null,
          links: mine,
        };
      });
    },
  );

  app.post(
    "/v1/agents/:id/rotate",
    {
      schema: {
        operationId: "rotateAgent",
        summary: "Issue a new token, shown once; the old one stops at once and its tunnels are closed.",
        params: idParams,
        response: answers({ 200: json("The new token.", agentCreated) }, 404),
      },
    },
    async (req) => {
      const { id } = req.params;
      const before = await store.getAgent(id);
      if (before === undefined) throw new NotFoundError(`no agent ${id}`);
      const token = generateSecret("upa");
      const after: AgentRecord = { ...before, tokenHash: hashSecret(token) };
      await store.replaceAgent(after);
      req.log.info({ agentId: id }, "agent token rotated");
      auditChange(deps, req, {
        event: "admin.agent.rotated",
        message: `token of agent ${before.name} rotated; its tunnels are closed`,
        agentId: id,
      });
      afterwards(req.log, "closing the agent's tunnels", () =>
        deps.tunnels.disconnectAgent(id, "token rotated"),
      );
      return created(after, token);
    },
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
      const before = await store.getAgent(id);
      if (!(await store.deleteAgent(id))) throw new NotFoundError(`no agent ${id}`);
      req.log.info({ agentId: id }, "agent deleted");
      auditChange(deps, req, {
        event: "admin.agent.deleted",
        message: `agent ${before?.name ?? id} deleted; its token stops working`,
        agentId: id,
        before: before ?? null,
      });
      afterwards(req.log, "closing the agent's tunnels", () =>
        deps.tunnels.disconnectAgent(id, "agent deleted"),
      );
      return reply.code(204).send();
    },
  );
};
