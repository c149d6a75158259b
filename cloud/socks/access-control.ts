/**
 * Which internal target a SOCKS destination means: the client's location, the virtual host
 * (case-insensitive, canonical IPs) and a port inside a single port or a range. A range maps
 * port by port: internal = internalStart + (port - virtualStart).
 */
import { normalizeHost } from "../../shared/net/host.js";
import { portDistance, rangeContains, translatePort } from "../../shared/net/port-range.js";
import type { MappingRecord } from "../store/store.js";

export interface Grant {
  readonly allowed: true;
  readonly mapping: MappingRecord;
  readonly internalHost: string;
  readonly internalPort: number;
}

export interface Denial {
  readonly allowed: false;
  /** Up to three mappings closest to what was asked, for the audit log. */
  readonly nearest: readonly MappingRecord[];
}

/** Pure: `mappings` are the client location's. */
export function resolveDestination(
  mappings: readonly MappingRecord[],
  host: string,
  port: number,
): Grant | Denial {
  const wanted = normalizeHost(host);
  for (const m of mappings) {
    if (m.virtualHost === wanted && rangeContains(m.virtualPort, port)) {
      return {
        allowed: true,
        mapping: m,
        internalHost: m.internalHost,
        internalPort: translatePort(m.virtualPort, m.internalPort, port),
      };
    }
  }
  const scored = mappings
    .map((m) => ({ m, score: (m.virtualHost === wanted ? 0 : 100_000) + portDistance(m.virtualPort, port) }))
    .sort((a, b) => a.score - b.score)
    .slice(0, 3)
    .map((x) => x.m);
  return { allowed: false, nearest: scored };
}
