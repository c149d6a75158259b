/**
 * What observers (metrics, audit) hear when a session cuts a peer for a bound: one message on
 * a `node:diagnostics_channel`, published only when someone subscribes. A session that bit is
 * gone right after, so a counter across sessions is the subscriber's.
 */
import { channel } from "node:diagnostics_channel";

/** The channel's name, for `diagnostics_channel.subscribe()`. */
export const TUNNEL_LIMIT_CHANNEL = "underpass:tunnel:limit";

export interface TunnelLimitEvent {
  readonly role: "relay" | "agent";
  /** The session option that bit, e.g. `maxQueuedControlBytes`. */
  readonly limit: string;
  /** The bound, and what the peer had made the session hold when it bit, in the limit's unit. */
  readonly bound: number;
  readonly held: number;
}

export const tunnelLimitChannel = channel(TUNNEL_LIMIT_CHANNEL);

export function publishLimit(event: TunnelLimitEvent): void {
  if (tunnelLimitChannel.hasSubscribers) tunnelLimitChannel.publish(event);
}
