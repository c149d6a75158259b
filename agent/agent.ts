/**
 * The on-premise agent: a pool of outbound tunnels to each relay (relay-pool.ts). Pools come and
 * go at run time with `addRelay()` / `removeRelay()`, and as the relays of a cluster join and
 * leave (relay-set.ts: each relay tells the live set); losing any tunnel never stops the others.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { RelayPool } from "./relay-pool.js";
import { learnedRelays } from "./relay-set.js";
import type { AgentIdentity, TunnelClient, TunnelClientOptions } from "./tunnel-client.js";

export interface AgentConfig extends Omit<TunnelClientOptions, "relayUrl"> {
  /** The relays to keep tunnels to (UNDERPASS_RELAY_URL); each gets a pool of its own. */
  readonly relayUrls?: readonly string[];
  /** One relay: the same as `relayUrls: [relayUrl]`. */
  readonly relayUrl?: string;
  /** Tunnels kept open to each relay (default 1). */
  readonly tunnels?: number;
  /** Follow the cluster's relay set (default true); false keeps to the URLs given. */
  readonly followRelays?: boolean;
  /** Whether a URL a relay told may be dialled (a plaintext one across a network may not). */
  readonly mayDial?: (url: string) => boolean;
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
  /** Starts a pool of tunnels to `url` and keeps it whatever the relays tell; nothing when there is one. */
  addRelay(url: string): void;
  /** Closes the tunnels to `url` and forgets it (a relay may tell it again). */
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
  /** The URLs given (UNDERPASS_RELAY_URL, addRelay): kept and retried whatever is told. */
  const bootstrap: string[] = [];
  const listeners = new Set<() => void>();
  const log = config.logger;
  let closed = false;
  /** A reconciliation is queued: many changes in one tick make one. */
  let queued = false;
  const changed = (): void => {
    for (const l of [...listeners]) l();
    if (config.followRelays === false || queued || closed) return;
    queued = true;
    queueMicrotask(() => {
      queued = false;
      follow();
    });
  };
  /** Pools to the relays told now, none to those no longer told. */
  const follow = (): void => {
    if (closed) return;
    const want = learnedRelays(
      bootstrap,
      [...pools.values()].map((p) => p.report()),
    );
    if (want === null) return;
    for (const url of want) {
      if (pools.has(url)) continue;
      if (config.mayDial && !config.mayDial(url)) {
        log.warn({ relay: url }, "a relay told of a relay whose URL this agent may not dial; skipped");
        continue;
      }
      log.info({ relay: url }, "a relay joined the cluster; opening tunnels to it");
      startPool(url);
    }
    for (const [url, pool] of pools) {
      if (bootstrap.includes(url) || want.includes(url)) continue;
      log.info({ relay: url }, "a relay left the cluster; closing its tunnels");
      pools.delete(url);
      void pool.stop().then(changed);
    }
  };
  const startPool = (url: string): void => {
    const pool = new RelayPool(url, options, tunnels, config.logger, changed);
    pools.set(url, pool);
    pool.start();
    changed();
  };

  const allClients = (): TunnelClient[] => [...pools.values()].flatMap((p) => p.clients);
  const upCount = (url?: string): number =>
    url === undefined
      ? [...pools.values()].reduce((n, p) => n + p.upCount(), 0)
      : (pools.get(url)?.upCount() ?? 0);
  const addRelay = (url: string): void => {
    if (closed) return;
    if (!bootstrap.includes(url)) bootstrap.push(url);
    if (!pools.has(url)) startPool(url);
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
      const at = bootstrap.indexOf(url);
      if (at >= 0) bootstrap.splice(at, 1);
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
