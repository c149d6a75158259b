/**
 * The on-premise agent: a pool of outbound tunnels to each relay (relay-pool.ts). Pools come and
 * go at run time with `addRelay()` / `removeRelay()`; losing any tunnel never stops the others.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { RelayPool } from "./relay-pool.js";
import type { AgentIdentity, TunnelClient, TunnelClientOptions } from "./tunnel-client.js";

export interface AgentConfig extends Omit<TunnelClientOptions, "relayUrl"> {
  /** The relays to keep tunnels to (UNDERPASS_RELAY_URL); each gets a pool of its own. */
  readonly relayUrls?: readonly string[];
  /** One relay: the same as `relayUrls: [relayUrl]`. */
  readonly relayUrl?: string;
  /** Tunnels kept open to each relay (default 1). */
  readonly tunnels?: number;
}

/** This host's name and a fresh random instance id: one agent process, as the relay sees it. */
export function newIdentity(): AgentIdentity {
  return { hostName: hostname(), instanceId: randomBytes(8).toString("hex") };
}

export interface Agent {
  /** Every tunnel, of every relay. */
  readonly clients: readonly TunnelClient[];
  /** What the hello of each tunnel says about this agent: host name and instance id. */
  readonly identity: AgentIdentity;
  /** The relays the agent keeps tunnels to, in the order they were added. */
  relays(): string[];
  /** Starts a pool of tunnels to `url`; nothing when there is one already. */
  addRelay(url: string): void;
  /** Closes the tunnels to `url` and forgets it. */
  removeRelay(url: string): Promise<void>;
  /** Tunnels currently up, over all relays (or to `url`). */
  upCount(url?: string): number;
  /** Resolves once at least `n` tunnels are up (default: all of them), bounded by `timeoutMs`. */
  waitUp(n?: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export function startAgent(config: AgentConfig): Agent {
  const urls = config.relayUrls ?? (config.relayUrl === undefined ? [] : [config.relayUrl]);
  if (urls.length === 0) throw new Error("startAgent: no relay URL");
  const tunnels = Math.max(1, config.tunnels ?? 1);
  // every tunnel of this agent, to every relay, says it is the same instance
  const options: AgentConfig = { ...config, identity: config.identity ?? newIdentity() };
  const pools = new Map<string, RelayPool>();
  const listeners = new Set<() => void>();
  const changed = (): void => {
    for (const l of [...listeners]) l();
  };
  let closed = false;

  const allClients = (): TunnelClient[] => [...pools.values()].flatMap((p) => p.clients);
  const upCount = (url?: string): number =>
    url === undefined
      ? [...pools.values()].reduce((n, p) => n + p.upCount(), 0)
      : (pools.get(url)?.upCount() ?? 0);
  const addRelay = (url: string): void => {
    if (closed || pools.has(url)) return;
    const pool = new RelayPool(url, options, tunnels, config.logger, changed);
    pools.set(url, pool);
    pool.start();
    changed();
  };
  for (const url of urls) addRelay(url);

  return {
    get clients() {
      return allClients();
    },
    identity: options.identity!,
    relays: () => [...pools.keys()],
    addRelay,
    async removeRelay(url) {
      const pool = pools.get(url);
      if (pool === undefined) return;
      pools.delete(url);
      await pool.stop();
      changed();
    },
    upCount,
    waitUp(want, timeoutMs = 30_000) {
      return new Promise<void>((resolve, reject) => {
        const target = (): number => want ?? pools.size * tunnels;
        const check = (): void => {
          if (upCount() >= target()) {
            listeners.delete(check);
            clearTimeout(timer);
            resolve();
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          const refusal = [...pools.values()].find((p) => p.lastRefusal)?.lastRefusal;
          reject(
            new Error(
              `agent: ${upCount()}/${target()} tunnels up after ${timeoutMs} ms${refusal ? ` (${refusal})` : ""}`,
            ),
          );
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
    async close() {
      closed = true;
      const all = [...pools.values()];
      pools.clear();
      await Promise.all(all.map((p) => p.stop()));
    },
  };
}
