/** `/v1/agents`: register, list, change, rotate and delete on-premise agents. */
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
import {
  type AgentAnswer,
  type AgentLink,
  agentAnswer,
  agentCreateBody,
  agentCreated,
  agentPatchBody,
} from "./schemas.js";
import { generateSecret, hashSecret } from "./secrets.js";

/** What the caller sees of a new or rotated agent: its token, this once. */
function created(agent: AgentRecord, token: string) {
  const { id, name, location, createdAt } = agent;
  return { id, name, location, token, createdAt };
}

/** An agent as `GET /v1/agents` lists it: the record and its live tunnels on this relay. */
function agentView(
  agent: AgentRecord,
  deps: AdminRouteOptions["deps"],
  /** Every relay's tunnels of the agent; this relay's alone when not given. */
  links?: readonly AgentLink[],
): AgentAnswer {
  const { id, name, location, createdAt, lastSeenAt, lastAddress } = agent;
  const local = deps.tunnels.statusOf(id);
  const all = [...(links ?? local.links)].sort((a, b) =>
    a.connectedAt < b.connectedAt ? -1 : a.connectedAt > b.connectedAt ? 1 : 0,
  );
  // this relay's own tunnel first; else the agent's oldest on any relay
  const first = all[0];
  return {
    id,
    name,
    location,
    createdAt,
    singleInstance: agent.singleInstance === true,
    connected: all.length > 0,
    connectedAt: local.connectedAt ?? first?.connectedAt ?? null,
    remoteAddress: local.remoteAddress ?? first?.remoteAddress ?? null,
    version: local.version ?? first?.version ?? null,
    tunnels: all.length,
    lastSeenAt: lastSeenAt ?? null,
    lastAddress: lastAddress ?? null,
    links: all,
  };
}

/** The record with the flag as stores keep it: present only when set. */
function withSingleInstance(agent: AgentRecord, on: boolean): AgentRecord {
  const { singleInstance: _, ...rest } = agent;
  return on ? { ...rest, singleInstance: true } : rest;
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
      const agent = withSingleInstance(
        {
          id: newId("ag"),
          name: req.body.name,
          location: req.body.location,
          tokenHash: hashSecret(token),
          createdAt: now(),
        },
        req.body.singleInstance === true,
      );
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
      return agents.map((agent) => agentView(agent, deps, links.get(agent.id) ?? []));
    },
  );

  app.patch(
    "/v1/agents/:id",
    {
      schema: {
        operationId: "updateAgent",
        summary: "Rename an agent or set its single-instance flag; its token and tunnels stay.",
        params: idParams,
        body: agentPatchBody,
        response: answers({ 200: json("The changed agent.", agentAnswer) }, 400, 404),
      },
    },
    async (req) => {
      const { id } = req.params;
      const before = await store.getAgent(id);
      if (before === undefined) throw new NotFoundError(`no agent ${id}`);
      const { name, singleInstance } = req.body;
      const after = withSingleInstance(
        { ...before, ...(name === undefined ? {} : { name }) },
        singleInstance ?? before.singleInstance === true,
      );
      if (after.name === before.name && after.singleInstance === before.singleInstance) {
        return agentView(before, deps);
      }
      await store.replaceAgent(after); // 404 if deleted meanwhile
      req.log.info({ agentId: id, singleInstance: after.singleInstance === true }, "agent changed");
      auditChange(deps, req, {
        event: "admin.agent.changed",
        message: `agent ${after.name} changed${after.singleInstance === before.singleInstance ? "" : `: single-instance ${after.singleInstance === true ? "on" : "off"}`}`,
        agentId: id,
        before,
        after,
      });
      return agentView(after, deps);
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
