/**
 * Live tunnels by location. Several agents may serve one location and an agent may keep a
 * pool of tunnels; new streams go to the live tunnel with the fewest streams, so load spreads
 * and any one tunnel may go away.
 */

import { GOAWAY_CODE } from "../../shared/tunnel/constants.js";
import type { MuxSession } from "../../shared/tunnel/mux-session.js";

export interface Tunnel {
  readonly id: string;
  readonly agentId: string;
  readonly agentName: string;
  readonly location: string;
  readonly session: MuxSession;
  readonly connectedAt: Date;
  readonly remoteAddress: string;
  readonly agentVersion: string;
  readonly capabilities: readonly string[];
  /** OPENs of the relay waiting for their OPEN_RESULT on this tunnel (counted in open.ts). */
  readonly opens: { pending: number };
  /** Streams and pending opens the relay keeps on this tunnel: the agent's and the relay's bounds, the smaller. */
  readonly maxStreams: number;
  readonly maxPendingOpens: number;
}

/** A tunnel can take one more stream now: under both its bounds. */
export function hasRoom(t: Tunnel): boolean {
  return t.session.streamCount < t.maxStreams && t.opens.pending < t.maxPendingOpens;
}

/** One live tunnel, for the cluster's view of the agents (admin API `links`). */
export interface TunnelLink {
  readonly agentId: string;
  readonly tunnelId: string;
  readonly remoteAddress: string;
  readonly version: string;
  /** ISO 8601. */
  readonly connectedAt: string;
}

export interface AgentStatus {
  readonly connected: boolean;
  /** ISO time the oldest live tunnel of the agent was established, or null. */
  readonly connectedAt: string | null;
  /** Remote address of the oldest live tunnel, or null. */
  readonly remoteAddress: string | null;
  /** Agent software version from its hello, or null. */
  readonly version: string | null;
  /** Live tunnels of the agent (an agent may keep a pool). */
  readonly tunnels: number;
}

export class AgentRegistry {
  readonly #byLocation = new Map<string, Tunnel[]>();
  readonly #byAgent = new Map<string, Set<Tunnel>>();
  #rotor = 0;
  /** Bumped by every revocation of an agent: a hello checked meanwhile is checked again. */
  #revision = 0;

  get revision(): number {
    return this.#revision;
  }

  /** Live tunnels of one agent. */
  tunnelsOf(agentId: string): number {
    return this.#byAgent.get(agentId)?.size ?? 0;
  }

  add(t: Tunnel): void {
    const list = this.#byLocation.get(t.location);
    if (list) list.push(t);
    else this.#byLocation.set(t.location, [t]);
    let set = this.#byAgent.get(t.agentId);
    if (!set) this.#byAgent.set(t.agentId, (set = new Set()));
    set.add(t);
  }

  remove(t: Tunnel): void {
    const list = this.#byLocation.get(t.location);
    if (list) {
      const i = list.indexOf(t);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.#byLocation.delete(t.location);
    }
    const set = this.#byAgent.get(t.agentId);
    if (set) {
      set.delete(t);
      if (set.size === 0) this.#byAgent.delete(t.agentId);
    }
  }

  /**
   * The live tunnel for a new stream in `location`, or undefined when no agent is connected.
   * With `agentId`, that agent's tunnels come first (an FTP data connection goes to the host
   * its control connection came from); with `capability`, only tunnels that serve it count;
   * with `roomy`, only tunnels under their bounds on streams and pending opens.
   */
  pick(
    location: string,
    want: { capability?: string; agentId?: string; roomy?: boolean } = {},
  ): Tunnel | undefined {
    const list = this.#byLocation.get(location);
    if (!list || list.length === 0) return undefined;
    const n = list.length;
    const start = this.#rotor++ % n;
    let best: Tunnel | undefined;
    let bestPreferred = false;
    for (let k = 0; k < n; k++) {
      const t = list[(start + k) % n]!;
      if (t.session.closed || !t.session.established) continue;
      if (want.capability && !t.capabilities.includes(want.capability)) continue;
      if (want.roomy && !hasRoom(t)) continue;
      const preferred = want.agentId !== undefined && t.agentId === want.agentId;
      if (
        !best ||
        (preferred && !bestPreferred) ||
        (preferred === bestPreferred && t.session.streamCount < best.session.streamCount)
      ) {
        best = t;
        bestPreferred = preferred;
      }
    }
    return best;
  }

  all(): Tunnel[] {
    return [...this.#byLocation.values()].flat();
  }

  /** Every live tunnel, oldest first. */
  links(): TunnelLink[] {
    return this.all()
      .map((t) => ({
        agentId: t.agentId,
        tunnelId: t.id,
        remoteAddress: t.remoteAddress,
        version: t.agentVersion,
        connectedAt: t.connectedAt.toISOString(),
      }))
      .sort((a, b) => (a.connectedAt < b.connectedAt ? -1 : a.connectedAt > b.connectedAt ? 1 : 0));
  }

  statusOf(agentId: string): AgentStatus {
    const set = this.#byAgent.get(agentId);
    if (!set || set.size === 0) {
      return { connected: false, connectedAt: null, remoteAddress: null, version: null, tunnels: 0 };
    }
    let oldest: Tunnel | undefined;
    for (const t of set) if (!oldest || t.connectedAt < oldest.connectedAt) oldest = t;
    return {
      connected: true,
      connectedAt: oldest!.connectedAt.toISOString(),
      remoteAddress: oldest!.remoteAddress,
      version: oldest!.agentVersion,
      tunnels: set.size,
    };
  }

  disconnectAgent(agentId: string, reason: string): void {
    this.#revision++;
    for (const t of [...(this.#byAgent.get(agentId) ?? [])]) t.session.close(GOAWAY_CODE.REVOKED, reason);
  }
}
