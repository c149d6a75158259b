/**
 * `GET /v1/events`: Server-Sent Events of what happens now — agents up and down, connections
 * opened and closed, denials, configuration changes, traffic samples (event-hub.ts).
 */
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { AdminRouteOptions } from "./deps.js";
import { answers } from "./responses.js";

export const eventsQuery = z.strictObject({
  types: z
    .string()
    .max(512)
    .optional()
    .meta({ description: "Comma-separated event types to receive; all when absent." }),
});

export const eventRoutes: FastifyPluginAsyncZod<AdminRouteOptions> = async (app, { deps }) => {
  app.get(
    "/v1/events",
    {
      schema: {
        operationId: "streamEvents",
        summary: "Live events as Server-Sent Events (text/event-stream), until the client leaves.",
        querystring: eventsQuery,
        response: answers(
          {
            200: {
              description: "An endless event stream: `event:` is the type, `data:` one JSON object.",
              content: { "text/event-stream": { schema: z.string() } },
            },
          },
          400,
        ),
      },
    },
    async (req, reply) => {
      const types = req.query.types
        ? new Set(
            req.query.types
              .split(",")
              .map((t) => t.trim())
              .filter(Boolean),
          )
        : null;
      reply.hijack();
      deps.events.subscribe(reply.raw, types);
    },
  );
};
