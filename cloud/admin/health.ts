/** `/healthz` (liveness, no token) and `/metrics` (Prometheus text, with the admin token). */
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { Store } from "../store/store.js";
import type { MetricsSource } from "./deps.js";
import { answers, json } from "./responses.js";
import { healthAnswer } from "./schemas.js";

/** Prometheus text exposition format, version 0.0.4. */
const PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8";

export interface HealthRouteOptions {
  readonly metrics: MetricsSource;
  /** Underpass version, shown by /healthz. */
  readonly version: string;
  /** A store that can be away (a shared database) says so in /healthz. */
  readonly store?: Pick<Store, "health">;
}

export const healthRoutes: FastifyPluginAsyncZod<HealthRouteOptions> = async (
  app,
  { metrics, version, store },
) => {
  app.get(
    "/healthz",
    {
      schema: {
        operationId: "health",
        summary: "Liveness; no authentication.",
        security: [],
        response: { 200: json("Alive.", healthAnswer) },
      },
    },
    // the relay is alive and serves what it holds either way: status stays "ok"
    async () => {
      const health = store?.health?.();
      return { status: "ok" as const, version, ...(health ? { store: health.state } : {}) };
    },
  );

  app.get(
    "/metrics",
    {
      schema: {
        operationId: "metrics",
        summary: "Prometheus metrics (text exposition format 0.0.4).",
        response: answers({
          200: { description: "Metrics.", content: { [PROMETHEUS_TEXT]: { schema: z.string() } } },
        }),
      },
    },
    async (_req, reply) => reply.type(PROMETHEUS_TEXT).send(await metrics.render()),
  );
};
