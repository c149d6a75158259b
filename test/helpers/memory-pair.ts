/**
 * Two MuxSessions joined by an in-memory transport, delivering bytes asynchronously and in order.
 * With a `clock`, every delivery also moves that virtual clock to `oneWayMs` after the send: a
 * simulated distance that the sessions (given `now: () => clock.ms`) see, with no real waiting.
 */
import { silentLogger } from "../../shared/logger.js";
import { DEFAULT_LIMITS, type TunnelLimits } from "../../shared/tunnel/constants.js";
import { type FrameTransport, MuxSession, type SessionOptions } from "../../shared/tunnel/mux-session.js";
import type { WindowBudget } from "../../shared/tunnel/window-budget.js";

/** A virtual clock in ms, moved forward by the deliveries of a distant memory pair. */
export interface VirtualClock {
  ms: number;
}

export class MemoryTransport implements FrameTransport {
  peer: MemoryTransport | null = null;
  /** The simulated distance: each delivery moves `clock` to `oneWayMs` after its send. */
  clock: VirtualClock | null = null;
  oneWayMs = 0;
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
    const clock = this.clock;
    const arrival = clock === null ? 0 : clock.ms + this.oneWayMs;
    const deliver = (): void => {
      if (clock !== null && clock.ms < arrival) clock.ms = arrival;
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
  options: {
    relayLimits?: TunnelLimits;
    agentLimits?: TunnelLimits;
    /** Simulated distance (see above); the sessions read this clock. */
    distance?: { clock: VirtualClock; rttMs: number };
    /** The agent's process window budget, when it is not the relay's (`processWindowBudget`). */
    agentWindowBudget?: WindowBudget;
  } & Partial<SessionOptions> = {},
): Pair {
  const rt = new MemoryTransport();
  const at = new MemoryTransport();
  const distance = options.distance;
  if (distance !== undefined) {
    for (const t of [rt, at]) {
      t.clock = distance.clock;
      t.oneWayMs = distance.rttMs / 2;
    }
  }
  const now = distance === undefined ? options.now : () => distance.clock.ms;
  rt.peer = at;
  at.peer = rt;
  const relayLimits = options.relayLimits ?? DEFAULT_LIMITS;
  const agentLimits = options.agentLimits ?? DEFAULT_LIMITS;
  const relay = new MuxSession(rt, {
    ...options,
    ...(now === undefined ? {} : { now }),
    role: "relay",
    limits: relayLimits,
    logger: silentLogger(),
  });
  const agent = new MuxSession(at, {
    ...options,
    ...(now === undefined ? {} : { now }),
    ...(options.agentWindowBudget === undefined ? {} : { processWindowBudget: options.agentWindowBudget }),
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
