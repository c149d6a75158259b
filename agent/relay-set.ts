/**
 * Which relays the agent keeps tunnels to beyond the ones it was started with, pure. Every
 * relay of a cluster tells its agents the live relays (the welcome, then RELAYS frames); the
 * agent keeps a pool to each relay that some relay it is connected to names now.
 *
 * - The bootstrap URLs (UNDERPASS_RELAY_URL) are always kept, and retried, whatever is told.
 * - A relay reached through a bootstrap URL is not dialled again through the URL it advertises
 *   (a balancer's name and a relay's own name are often two URLs of one relay).
 * - Only relays whose tunnel is up are heard: a relay that stopped or lost its database keeps
 *   itself in its own set, and a relay that died is heard no more.
 * - When no relay is heard at all (every tunnel down: a network outage, a restart of them all),
 *   nothing changes: no news is not the news that every relay left.
 */
import type { RelayEntry } from "../shared/tunnel/frame.js";

/** What one relay the agent holds a pool to tells it. */
export interface RelayReport {
  /** The URL the agent dials it by. */
  readonly url: string;
  /** Whether at least one tunnel of the pool is up now. */
  readonly up: boolean;
  /** The relay's id, from its welcome; null when not known (never up, or an older relay). */
  readonly relayId: string | null;
  /** The live relays it last told; null when it told none. */
  readonly relays: readonly RelayEntry[] | null;
}

/**
 * The learned URLs to keep (in the order first told), or null when nothing is heard and the
 * pools should stay as they are.
 */
export function learnedRelays(
  bootstrap: readonly string[],
  reports: readonly RelayReport[],
): string[] | null {
  const heard = reports.filter((r) => r.up && r.relays !== null);
  if (heard.length === 0) return null;
  const boot = new Set(bootstrap);
  const throughBootstrap = new Set(
    reports.filter((r) => boot.has(r.url) && r.relayId !== null).map((r) => r.relayId),
  );
  const out: string[] = [];
  for (const report of heard) {
    for (const relay of report.relays ?? []) {
      if (boot.has(relay.url) || throughBootstrap.has(relay.id) || out.includes(relay.url)) continue;
      out.push(relay.url);
    }
  }
  return out;
}
