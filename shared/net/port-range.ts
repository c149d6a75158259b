/**
 * Port ranges: a single port or an inclusive range "30000-30010". A mapping translates a
 * virtual port inside its virtual range to `internal.start + (port - virtual.start)`.
 */

/** An inclusive TCP port range; a single port has `start === end`. */
export interface PortRange {
  readonly start: number;
  readonly end: number;
}

const RANGE = /^(\d{1,5})(?:-(\d{1,5}))?$/;

/** Parse `21`, `"21"` or `"30000-30010"`; returns an error message instead of throwing. */
export function parsePortRange(input: number | string): PortRange | string {
  if (typeof input === "number") {
    if (!Number.isInteger(input) || input < 1 || input > 65535) return `port ${input} is not in 1-65535`;
    return { start: input, end: input };
  }
  const m = RANGE.exec(input.trim());
  if (!m) return `"${input}" is not a port or a range like 30000-30010`;
  const start = Number(m[1]);
  const end = m[2] === undefined ? start : Number(m[2]);
  if (start < 1 || start > 65535 || end < 1 || end > 65535) return `"${input}" has a port outside 1-65535`;
  if (end < start) return `"${input}" ends before it starts`;
  return { start, end };
}

/** Number of ports in the range. */
export function rangeSize(r: PortRange): number {
  return r.end - r.start + 1;
}

export function rangeContains(r: PortRange, port: number): boolean {
  return port >= r.start && port <= r.end;
}

export function rangesOverlap(a: PortRange, b: PortRange): boolean {
  return a.start <= b.end && b.start <= a.end;
}

/** The internal port for `port` of the virtual range (the caller checked containment). */
export function translatePort(virtual: PortRange, internal: PortRange, port: number): number {
  return internal.start + (port - virtual.start);
}

/** `21` or `30000-30010`, the form the admin API shows. */
export function formatPortRange(r: PortRange): number | string {
  return r.start === r.end ? r.start : `${r.start}-${r.end}`;
}

/**
 * Every port of the range once, starting at `first` and wrapping around from the end to the
 * start; a `first` outside the range counts from the start as if the range repeated.
 */
export function* portsFrom(r: PortRange, first: number): Generator<number, void, undefined> {
  const size = rangeSize(r);
  const offset = (((first - r.start) % size) + size) % size;
  for (let i = 0; i < size; i++) yield r.start + ((offset + i) % size);
}

/** The port after `port` in the range, the start after the end. */
export function nextPort(r: PortRange, port: number): number {
  return port >= r.end ? r.start : port + 1;
}

/** Distance from a port to a range (0 inside), used to name the nearest mappings in denials. */
export function portDistance(r: PortRange, port: number): number {
  if (port < r.start) return r.start - port;
  if (port > r.end) return port - r.end;
  return 0;
}
