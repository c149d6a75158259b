/**
 * The on-premise agent: a pool of outbound tunnels to the relay. Each tunnel reconnects on
 * its own, so losing one never stops the others.
 */
import { TunnelClient, type TunnelClientOptions, type TunnelState } from "./tunnel-client.js";

export interface AgentConfig extends TunnelClientOptions {
  /** Tunnels kept open at once (default 1). */
  readonly tunnels?: number;
}

export interface Agent {
  readonly clients: readonly TunnelClient[];
  /** Tunnels currently up. */
  upCount(): number;
  /** Resolves once at least `n` tunnels are up (bounded by `timeoutMs`). */
  waitUp(n?: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export function startAgent(config: AgentConfig): Agent {
  const n = Math.max(1, config.tunnels ?? 1);
  const listeners = new Set<() => void>();
  const clients = Array.from({ length: n }, (_, i) => {
    const c = new TunnelClient({ ...config, logger: config.logger.child({ tunnel: i }) });
    c.onState = (_s: TunnelState) => {
      for (const l of [...listeners]) l();
    };
    return c;
  });
  for (const c of clients) c.start();
  const upCount = (): number => clients.filter((c) => c.state === "up").length;
  return {
    clients,
    upCount,
    waitUp(want = n, timeoutMs = 30_000) {
      return new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (upCount() >= want) {
            listeners.delete(check);
            clearTimeout(timer);
            resolve();
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          const refusal = clients.find((c) => c.lastRefusal)?.lastRefusal;
          reject(
            new Error(
              `agent: ${upCount()}/${want} tunnels up after ${timeoutMs} ms${refusal ? ` (${refusal})` : ""}`,
            ),
          );
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
    async close() {
      await Promise.all(clients.map((c) => c.stop()));
    },
  };
}
