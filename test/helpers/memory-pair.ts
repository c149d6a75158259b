/** Two MuxSessions joined by an in-memory transport, delivering bytes asynchronously and in order. */
import { silentLogger } from "../../shared/logger.js";
import { DEFAULT_LIMITS, type TunnelLimits } from "../../shared/tunnel/constants.js";
import { type FrameTransport, MuxSession, type SessionOptions } from "../../shared/tunnel/mux-session.js";

export class MemoryTransport implements FrameTransport {
  peer: MemoryTransport | null = null;
  session: MuxSession | null = null;
  closed = false;
  /** Bytes sent and not yet delivered: what a socket buffer would hold. */
  bufferedAmount = 0;
  sent = 0;
  /** When set, deliveries wait until `release()` (a stalled network). */
  held: Array<() => void> | null = null;

  send(data: Buffer, onSent?: () => void): void {
    if (this.closed) return;
    const copy = Buffer.from(data);
    this.bufferedAmount += copy.length;
    this.sent += copy.length;
    const deliver = (): void => {
      this.bufferedAmount -= copy.length;
      onSent?.();
      if (!this.peer?.closed) this.peer?.session?.receive(copy);
    };
    if (this.held) this.held.push(deliver);
    else setImmediate(deliver);
  }

  release(): void {
    const h = this.held ?? [];
    this.held = null;
    for (const d of h) d();
  }

  close(_code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    setImmediate(() => {
      this.session?.transportClosed(reason);
      if (this.peer && !this.peer.closed) {
        this.peer.closed = true;
        this.peer.session?.transportClosed(reason);
      }
    });
  }
}

export interface Pair {
  relay: MuxSession;
  agent: MuxSession;
  relayTransport: MemoryTransport;
  agentTransport: MemoryTransport;
}

export function memoryPair(
  options: { relayLimits?: TunnelLimits; agentLimits?: TunnelLimits } & Partial<SessionOptions> = {},
): Pair {
  const rt = new MemoryTransport();
  const at = new MemoryTransport();
  rt.peer = at;
  at.peer = rt;
  const relayLimits = options.relayLimits ?? DEFAULT_LIMITS;
  const agentLimits = options.agentLimits ?? DEFAULT_LIMITS;
  const relay = new MuxSession(rt, {
    ...options,
    role: "relay",
    limits: relayLimits,
    logger: silentLogger(),
  });
  const agent = new MuxSession(at, {
    ...options,
    role: "agent",
    limits: agentLimits,
    logger: silentLogger(),
  });
  rt.session = relay;
  at.session = agent;
  relay.establish(agentLimits);
  agent.establish(relayLimits);
  return { relay, agent, relayTransport: rt, agentTransport: at };
}
