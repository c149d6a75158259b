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
  /** The agent's host name from its hello; null for an agent that does not send it. */
  readonly hostName: string | null;
  /** The agent process's random id from its hello; null for an agent that does not send it. */
  readonly instanceId: string | null;
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

/**
 * One live tunnel of an agent as the admin API lists it. The shape is the same on every relay
 * of a cluster, so that lists of several relays can be put together.
 */
export interface AgentLink {
  /** The relay that holds the tunnel. */
  readonly relayId: string;
  readonly tunnelId: string;
  /** `address:port` the tunnel came from. */
  readonly remoteAddress: string;
  readonly hostName: string | null;
  readonly instanceId: string | null;
  /** Agent software version from the hello. */
  readonly version: string;
  /** ISO time the tunnel was established. */
  readonly connectedAt: string;
}

/**
 * The key one agent process counts under: its instance id, or, for an agent that sends none,
 * its source address (the tunnels of one host are taken for one instance).
 */
export function instanceKey(t: Pick<Tunnel, "instanceId" | "remoteAddress">): string {
  if (t.instanceId !== null) return `instance ${t.instanceId}`;
  const colon = t.remoteAddress.lastIndexOf(":");
  return `address ${colon < 0 ? t.remoteAddress : t.remoteAddress.slice(0, colon)}`;
}

/** A live tunnel with its agent: what a relay tells its peers for the cluster's view. */
export type TunnelLink = AgentLink & { readonly agentId: string };

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
  /** Each live tunnel, oldest first: where it came from and which instance holds it. */
  readonly links: AgentLink[];
}

/** The status of an agent without a live tunnel. */
export function notConnected(): AgentStatus {
  return { connected: false, connectedAt: null, remoteAddress: null, version: null, tunnels: 0, links: [] };
}

export class AgentRegistry {
  /** This relay's id, named in each link. */
  readonly relayId: string;
  readonly #byLocation = new Map<string, Tunnel[]>();
  readonly #byAgent = new Map<string, Set<Tunnel>>();
  #rotor = 0;
  /** Bumped by every revocation of an agent: a hello checked meanwhile is checked again. */
  #revision = 0;

  constructor(relayId = "") {
    this.relayId = relayId;
  }

  get revision(): number {
    return this.#revision;
  }

  /** Live tunnels of one agent. */
  tunnelsOf(agentId: string): number {
    return this.#byAgent.get(agentId)?.size ?? 0;
  }

  /**
   * The live tunnels of `agentId` held by instances other than the one of `key`
   * (`instanceKey`): the oldest tunnel of each such instance.
   */
  otherInstances(agentId: string, key: string): Tunnel[] {
    const first = new Map<string, Tunnel>();
    for (const t of this.#byAgent.get(agentId) ?? []) {
      if (t.session.closed) continue;
      const k = instanceKey(t);
      const seen = first.get(k);
      if (k !== key && (seen === undefined || t.connectedAt < seen.connectedAt)) first.set(k, t);
    }
    return [...first.values()];
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

  /** Every live tunnel with its agent, oldest first: what a peer relay is told of this one. */
  links(): TunnelLink[] {
    return this.all()
      .sort((a, b) => a.connectedAt.getTime() - b.connectedAt.getTime())
      .map((t) => ({ agentId: t.agentId, ...this.#link(t) }));
  }

  #link(t: Tunnel): AgentLink {
    return {
      relayId: this.relayId,
      tunnelId: t.id,
      remoteAddress: t.remoteAddress,
      hostName: t.hostName,
      instanceId: t.instanceId,
      version: t.agentVersion,
      connectedAt: t.connectedAt.toISOString(),
    };
  }

  statusOf(agentId: string): AgentStatus {
    const set = this.#byAgent.get(agentId);
    if (!set || set.size === 0) return notConnected();
    const tunnels = [...set].sort((a, b) => a.connectedAt.getTime() - b.connectedAt.getTime());
    const oldest = tunnels[0]!;
    return {
      connected: true,
      connectedAt: oldest.connectedAt.toISOString(),
      remoteAddress: oldest.remoteAddress,
      version: oldest.agentVersion,
      tunnels: set.size,
      links: tunnels.map((t) => this.#link(t)),
    };
  }

  disconnectAgent(agentId: string, reason: string): void {
    this.#revision++;
    for (const t of [...(this.#byAgent.get(agentId) ?? [])]) t.session.close(GOAWAY_CODE.REVOKED, reason);
  }
}
