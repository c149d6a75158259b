/** The hello and welcome bodies, validated with zod at the edge of each side. */
import { z } from "zod";
import { DEFAULT_LIMITS, MAX_ADVERTISED_RELAYS, type TunnelLimits } from "./constants.js";

const limits = z
  .object({
    maxFramePayload: z
      .number()
      .int()
      .min(1024)
      .max(16 * 1024 * 1024),
    maxControlPayload: z
      .number()
      .int()
      .min(256)
      .max(1024 * 1024),
    maxStreams: z.number().int().min(1).max(1_000_000),
    maxPendingOpens: z.number().int().min(1).max(1_000_000),
    initialWindow: z
      .number()
      .int()
      .min(16 * 1024)
      .max(1 << 30),
  })
  .partial();

/** Capabilities an agent may announce. */
export const CAPABILITY = {
  CONNECT: "connect",
  BIND: "bind",
  /** The agent follows the cluster's relay set: the relay may send it RELAYS frames. */
  RELAYS: "relays",
} as const;

export const helloSchema = z.object({
  version: z.number().int(),
  token: z.string().min(1).max(512),
  agentVersion: z.string().max(64),
  capabilities: z.array(z.string().max(32)).max(32).default([]),
  limits: limits.optional(),
  /**
   * Who runs the agent, so that the relay tells two instances holding one token apart: the
   * host's name (`os.hostname()`) and a random id drawn once per process. Optional: an agent
   * that predates them still connects.
   */
  hostName: z.string().min(1).max(255).optional(),
  instanceId: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/)
    .optional(),
});
export type Hello = z.infer<typeof helloSchema>;

const relayEntry = z.object({ id: z.string().min(1).max(64), url: z.string().min(1).max(2048) });

/** An agent of an older build strips what it does not know (zod's default): relayId, relays. */
export const welcomeSchema = z.object({
  version: z.number().int(),
  agentId: z.string(),
  location: z.string(),
  limits: limits.optional(),
  /** The relay that answers; its entry in `relays` is this tunnel's relay. */
  relayId: z.string().max(64).optional(),
  /** The live relays of its cluster, itself included when it has a URL to advertise. */
  relays: z.array(relayEntry).max(MAX_ADVERTISED_RELAYS).optional(),
});
export type Welcome = z.infer<typeof welcomeSchema>;

/** A peer's announced limits, with ours filling what it left out. */
export function mergeLimits(announced: Partial<TunnelLimits> | undefined): TunnelLimits {
  return { ...DEFAULT_LIMITS, ...announced };
}
