/**
 * The tunnel and the stream: pick a live tunnel of the location, then have its agent dial the
 * internal target (CONNECT) or listen for it (BIND). Each answers a value or a coded error.
 */
import { LimitExceededError, NoAgentError, toUnderpassError, UnderpassError } from "../../shared/errors.js";
import { OPEN_KIND, type OpenKind } from "../../shared/tunnel/constants.js";
import { CAPABILITY } from "../../shared/tunnel/handshake.js";
import type { OpenResult } from "../../shared/tunnel/mux-session.js";
import type { RelayEvents } from "../events.js";
import type { AgentRegistry, Tunnel } from "../tunnel/registry.js";

export interface TunnelWish {
  /** Only tunnels whose agent announced it (BIND needs `bind`). */
  readonly capability?: string;
  /** That agent's tunnels first. */
  readonly agentId?: string | undefined;
}

/** Told when every tunnel of a location is at its bounds (cloud/limits). */
export type TunnelsFull = (location: string, tunnel: Tunnel) => void;

/**
 * The live tunnel with the fewest streams among the location's (see AgentRegistry.pick), among
 * those under their bounds on streams and pending opens. When all are at their bounds, the
 * refusal is immediate (`UP_ERR_LIMIT_EXCEEDED`, SOCKS `0x01`): nothing waits in a queue.
 */
export function pickTunnel(
  registry: AgentRegistry,
  location: string,
  wish: TunnelWish = {},
  onFull: TunnelsFull | null = null,
): Tunnel | NoAgentError | LimitExceededError {
  const tunnel = registry.pick(location, { ...wish, roomy: true });
  if (tunnel) return tunnel;
  const full = registry.pick(location, wish);
  if (full) {
    onFull?.(location, full);
    return new LimitExceededError(
      `every tunnel of location ${location} is at its bound (${full.maxStreams} streams, ${full.maxPendingOpens} pending opens)`,
    );
  }
  return new NoAgentError(
    wish.capability === CAPABILITY.BIND
      ? `no agent serving BIND for location ${location}`
      : `no agent connected for location ${location}`,
  );
}

/**
 * OPEN on the tunnel and wait for OPEN_RESULT, at most `timeoutMs` (plus the session's grace).
 * The agent's refusal, the tunnel going away or the timeout come back as the coded error. With
 * `events`, how long the answer took is published (`tunnelOpenResult`).
 */
export async function openOnPremises(
  tunnel: Tunnel,
  kind: OpenKind,
  host: string,
  port: number,
  timeoutMs: number,
  events: RelayEvents | null = null,
): Promise<OpenResult | UnderpassError> {
  const sentAt = performance.now();
  let result: OpenResult | UnderpassError;
  tunnel.opens.pending++;
  try {
    result = await tunnel.session.open(kind, host, port, timeoutMs);
  } catch (err) {
    result = toUnderpassError(err);
  } finally {
    tunnel.opens.pending--;
  }
  const ch = events?.tunnelOpenResult;
  if (ch?.active) {
    ch.publish({
      relayId: ch.relayId,
      tunnelId: tunnel.id,
      agentId: tunnel.agentId,
      location: tunnel.location,
      kind: kind === OPEN_KIND.BIND ? "bind" : "connect",
      openMs: performance.now() - sentAt,
      code: result instanceof UnderpassError ? result.code : null,
    });
  }
  return result;
}
