/**
 * The tunnels to one relay URL: `tunnels` TunnelClients, each reconnecting on its own, so that
 * losing one never stops the others. The agent holds one pool per relay, and adds or removes
 * pools as the set of relays changes (UNDERPASS_RELAY_URL at start; a cluster's relays later).
 */
import type { Logger } from "../shared/logger.js";
import type { RelayReport } from "./relay-set.js";
import { TunnelClient, type TunnelClientOptions } from "./tunnel-client.js";

export class RelayPool {
  readonly url: string;
  readonly clients: readonly TunnelClient[];

  /** `onChange` hears every state change of every tunnel of the pool. */
  constructor(
    url: string,
    options: Omit<TunnelClientOptions, "relayUrl">,
    tunnels: number,
    logger: Logger,
    onChange: () => void,
  ) {
    this.url = url;
    this.clients = Array.from({ length: Math.max(1, tunnels) }, (_, i) => {
      const c = new TunnelClient({
        ...options,
        relayUrl: url,
        logger: logger.child({ relay: url, tunnel: i }),
      });
      c.onState = onChange;
      c.onRelays = onChange;
      return c;
    });
  }

  start(): void {
    for (const c of this.clients) c.start();
  }

  /** Closes every tunnel of the pool with a GOAWAY and stops redialling. */
  async stop(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.stop()));
  }

  /** Tunnels of the pool that are up. */
  upCount(): number {
    return this.clients.filter((c) => c.state === "up").length;
  }

  /** What the relay tells of the cluster, for the agent's relay set (relay-set.ts). */
  report(): RelayReport {
    const up = this.clients.filter((c) => c.state === "up");
    const told = up.find((c) => c.relays !== null) ?? null;
    return {
      url: this.url,
      up: up.length > 0,
      relayId: this.clients.find((c) => c.relayId !== null)?.relayId ?? null,
      relays: told?.relays ?? null,
    };
  }

  /** The last refusal the relay gave one of the tunnels (auth, version, certificate), if any. */
  get lastRefusal(): string | null {
    return this.clients.find((c) => c.lastRefusal)?.lastRefusal ?? null;
  }
}
