/**
 * `/v1/relays`: the relays of the cluster. `/v1/cluster/…`: what one relay asks another for the
 * merged view (cluster/cluster-view.ts), authenticated by the cluster secret instead of the
 * admin token (app.ts, `config.cluster`), and left out of the API document: no operator calls
 * them.
 */
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { NotFoundError } from "../../shared/errors.js";
import type { AdminDeps, AdminRouteOptions } from "./deps.js";
import { answers, idParams, json } from "./responses.js";
import { connectionAnswer, type RelayStateAnswer, relayAnswer, relayStateAnswer } from "./schemas.js";

/** The header that names the relays that did not answer a merged view, comma-separated. */
export const MISSING_RELAYS_HEADER = "underpass-missing-relays";

/** What this relay holds now, as a peer is told it. */
export function localState(deps: Pick<AdminDeps, "connections" | "tunnels" | "cluster">): RelayStateAnswer {
  const relayId = deps.cluster.selfId;
  return {
    relayId,
    connections: deps.connections.list().map((c) => ({ ...c, relayId })),
    links: deps.tunnels.links(),
  };
}

/** Every live relay's state, this one's first, and which relays did not answer. */
export async function clusterStates(
  deps: Pick<AdminDeps, "connections" | "tunnels" | "cluster">,
): Promise<{ states: RelayStateAnswer[]; missing: readonly string[] }> {
  const peers = await deps.cluster.peerStates();
  return { states: [localState(deps), ...peers.value], missing: peers.missing };
}

export const clusterRoutes: FastifyPluginAsyncZod<AdminRouteOptions> = async (app, { deps }) => {
  app.get(
    "/v1/relays",
    {
      schema: {
        operationId: "listRelays",
        summary:
          "The relays of the cluster: addresses, version, up since, last heartbeat, live or not, agents and connections held.",
        response: answers({ 200: json("Relays, the oldest first.", z.array(relayAnswer)) }),
      },
    },
    async () => deps.cluster.relays().map((r) => ({ ...r, self: r.id === deps.cluster.selfId })),
  );

  app.get(
    "/v1/cluster/state",
    {
      config: { cluster: true },
      schema: {
        hide: true,
        response: answers({ 200: json("This relay's live state.", relayStateAnswer) }),
      },
    },
    async () => localState(deps),
  );

  app.delete(
    "/v1/cluster/connections/:id",
    {
      config: { cluster: true },
      schema: {
        hide: true,
        params: idParams,
        response: answers({ 200: json("Reset; what it was.", connectionAnswer) }, 404),
      },
    },
    async (req) => {
      const { id } = req.params;
      const before = deps.connections.list().find((c) => c.id === id);
      if (before === undefined || !deps.connections.kill(id)) throw new NotFoundError(`no connection ${id}`);
      req.log.info({ connectionId: id }, "connection reset at another relay's request");
      return { ...before, relayId: deps.cluster.selfId };
    },
  );
};

declare module "fastify" {
  interface FastifyContextConfig {
    /** The route is for the relays of the cluster: the cluster secret, not the admin token. */
    cluster?: boolean;
  }
}
