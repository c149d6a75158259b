/**
 * Two mappings of one location overlap when their virtual hosts are the same and their virtual
 * port ranges intersect: a SOCKS destination would then match both. Every store refuses such a
 * mapping inside its write, so that the check and the write it guards are one step.
 */
import { ConflictError } from "../../shared/errors.js";
import { formatPortRange, rangesOverlap } from "../../shared/net/port-range.js";
import type { MappingRecord } from "./store.js";

/** A 409 that names the mapping in the way. */
export class MappingConflictError extends ConflictError {
  readonly conflictsWith: string;
  constructor(message: string, conflictsWith: string) {
    super(message);
    this.conflictsWith = conflictsWith;
  }
}

/** The first of `mappings` whose virtual host is the same and whose range intersects. */
function findOverlap(
  mappings: readonly MappingRecord[],
  wanted: Pick<MappingRecord, "virtualHost" | "virtualPort">,
  exceptId?: string,
): MappingRecord | undefined {
  const host = wanted.virtualHost.toLowerCase();
  return mappings.find(
    (m) =>
      m.id !== exceptId &&
      m.virtualHost.toLowerCase() === host &&
      rangesOverlap(m.virtualPort, wanted.virtualPort),
  );
}

/**
 * Throw `MappingConflictError` when `mapping` overlaps one of `sameLocation` (the mappings of
 * its location as stored); the mapping itself, by id, is not in its own way.
 */
export function refuseOverlap(sameLocation: readonly MappingRecord[], mapping: MappingRecord): void {
  const other = findOverlap(sameLocation, mapping, mapping.id);
  if (other === undefined) return;
  throw new MappingConflictError(
    `${mapping.virtualHost}:${formatPortRange(mapping.virtualPort)} overlaps mapping ${other.id} ` +
      `(${other.virtualHost}:${formatPortRange(other.virtualPort)}) in location "${mapping.location}"`,
    other.id,
  );
}
