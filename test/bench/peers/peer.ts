/**
 * A peer is one way to reach the on-premise target from the cloud side: straight (the
 * harness's ceiling), or through a SOCKS5 proxy the bench starts. Every peer is driven by the
 * same client (socks5-client.ts) against the same target.
 */
import type { PortSpan } from "../../helpers/ports.js";
import type { Destination, SocksEndpoint } from "../socks5-client.js";

export const PEER_IDS = [
  "direct",
  "microsocks",
  "dante",
  "ssh",
  "underpass-ws",
  "underpass-wss",
  "underpass-cluster",
  "baseline-ws",
  "baseline-wss",
] as const;
export type PeerId = (typeof PEER_IDS)[number];

/** How each peer is named in tables and on the chart. */
export const PEER_LABEL: Readonly<Record<PeerId, string>> = {
  direct: "direct (no proxy)",
  microsocks: "microsocks",
  dante: "Dante danted",
  ssh: "OpenSSH -R (aes128-gcm)",
  "underpass-ws": "Underpass ws",
  "underpass-wss": "Underpass wss",
  "underpass-cluster": "Underpass, 3 relays behind haproxy",
  "baseline-ws": "Underpass ws (baseline build)",
  "baseline-wss": "Underpass wss (baseline build)",
};

/** A service on premises: `ports` on `host`, reached from the cloud as `name`. */
export interface Service {
  /** Short name; Underpass maps it as the virtual host `<name>.bench`. */
  readonly name: string;
  readonly host: string;
  readonly ports: PortSpan;
  /** The virtual port of `ports.start` (Underpass only); `ports.start` unless given. */
  readonly virtualStart?: number;
}

export interface Peer {
  readonly id: PeerId;
  /** Where SOCKS5 clients connect; null for `direct`. */
  readonly proxy: SocksEndpoint | null;
  /** Make `service` reachable and say how the client names its first port. */
  expose(service: Service): Promise<Destination>;
  /** Processes whose memory counts as the peer's (relay and agent; the proxy). */
  pids(): number[];
  /** Stop every process of the peer. */
  stop(): Promise<void>;
}

/** Where a peer puts its config, keys, data and logs. */
export interface PeerContext {
  /** A fresh directory for this peer. */
  readonly dir: string;
  /** Start Node processes with --cpu-prof into `dir/profiles`. */
  readonly profile: boolean;
  /** dist/cli/main.js of the Underpass build to run. */
  readonly cli: string;
  /** Extra Node flags for Underpass's processes. */
  readonly nodeFlags: readonly string[];
  /**
   * A delay link of this round-trip time, in ms, on the tunnel hop only (agent ↔ relay:
   * delay-link.ts in front of the relay's tunnel port); null for none. Underpass only.
   */
  readonly tunnelRttMs: number | null;
  /** More environment for the relay (Underpass only). */
  readonly relayEnv: Readonly<Record<string, string>>;
}

/** Peers that need no set-up on the target's side. */
export function exposeAsIs(service: Service): Promise<Destination> {
  return Promise.resolve({ host: service.host, port: service.ports.start });
}
