/**
 * Which internal target a SOCKS destination means: the client's location, the virtual host
 * (case-insensitive, canonical IPs) and a port inside a single port or a range. A range maps
 * port by port: internal = internalStart + (port - virtualStart).
 *
 * A location may hold many thousands of mappings, and a peer chooses what it asks for: the
 * lookup goes through an index by virtual host, and the "nearest mappings" of a denial look at
 * the same host's mappings and a bounded number of others, never at all of them.
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

/** Mappings named in a denial. */
const NEAREST = 3;
/**
 * Mappings of other virtual hosts a denial looks at, in the location's order, for its nearest
 * ones: the work of a denial is bounded whatever the location holds.
 */
export const NEAREST_SCAN = 256;

/** A location's mappings by virtual host, in their order. */
type HostIndex = ReadonlyMap<string, readonly MappingRecord[]>;

/**
 * Built once per array: the file store hands out the same array for a location until it
 * changes, so the index lives exactly as long as that version of the location (a store that
 * builds a new array per call pays one linear pass, still no sort).
 */
const INDEXES = new WeakMap<readonly MappingRecord[], HostIndex>();

function hostIndex(mappings: readonly MappingRecord[]): HostIndex {
  let index = INDEXES.get(mappings);
  if (index) return index;
  const built = new Map<string, MappingRecord[]>();
  for (const m of mappings) {
    const list = built.get(m.virtualHost);
    if (list) list.push(m);
    else built.set(m.virtualHost, [m]);
  }
  index = built;
  INDEXES.set(mappings, index);
  return index;
}

/** Pure: `mappings` are the client location's. */
export function resolveDestination(
  mappings: readonly MappingRecord[],
  host: string,
  port: number,
): Grant | Denial {
  const wanted = normalizeHost(host);
  const sameHost = hostIndex(mappings).get(wanted) ?? [];
  for (const m of sameHost) {
    if (rangeContains(m.virtualPort, port)) {
      return {
        allowed: true,
        mapping: m,
        internalHost: m.internalHost,
        internalPort: translatePort(m.virtualPort, m.internalPort, port),
      };
    }
  }
  return { allowed: false, nearest: nearestTo(mappings, sameHost, wanted, port) };
}

/**
 * The same host's mappings by port distance first, then, while fewer than three, other hosts'
 * among the first NEAREST_SCAN of the location by port distance; ties keep the location's order.
 */
function nearestTo(
  mappings: readonly MappingRecord[],
  sameHost: readonly MappingRecord[],
  wanted: string,
  port: number,
): MappingRecord[] {
  const best: { m: MappingRecord; d: number }[] = [];
  const offer = (m: MappingRecord, d: number): void => {
    if (best.length === NEAREST && d >= best[NEAREST - 1]!.d) return;
    let i = best.length;
    while (i > 0 && best[i - 1]!.d > d) i--;
    best.splice(i, 0, { m, d });
    if (best.length > NEAREST) best.pop();
  };
  for (const m of sameHost) offer(m, portDistance(m.virtualPort, port));
  const near = best.map((x) => x.m);
  if (near.length === NEAREST) return near;
  best.length = 0;
  const scan = Math.min(mappings.length, NEAREST_SCAN + sameHost.length);
  for (let i = 0; i < scan; i++) {
    const m = mappings[i]!;
    if (m.virtualHost !== wanted) offer(m, portDistance(m.virtualPort, port));
  }
  return [...near, ...best.map((x) => x.m)].slice(0, NEAREST);
}
