/**
 * Plain-text tables and key/value blocks for the admin CLI: what a person reads in a terminal.
 * Columns are padded to their widest cell; `null`/`undefined` print as `-`.
 */

export interface Column<T> {
  readonly header: string;
  readonly value: (row: T) => unknown;
  /** Right-align (numbers). */
  readonly right?: boolean;
}

export function cell(value: unknown): string {
  if (value === null || value === undefined || value === "") return "-";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (Array.isArray(value)) return value.map(cell).join(", ");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function renderTable<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const cells = rows.map((r) => columns.map((c) => cell(c.value(r))));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: readonly string[]): string =>
    values
      .map((v, i) => (columns[i]!.right ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  const out = [line(columns.map((c) => c.header)), ...cells.map(line)];
  if (rows.length === 0) out.push("(none)");
  return `${out.join("\n")}\n`;
}

/** `key: value` lines, keys padded, in the order given. */
export function renderFields(fields: ReadonlyArray<readonly [string, unknown]>): string {
  const width = Math.max(0, ...fields.map(([k]) => k.length));
  return `${fields.map(([k, v]) => `${`${k}:`.padEnd(width + 1)} ${cell(v)}`).join("\n")}\n`;
}

/** Bytes in the largest unit that keeps the number at least 1 (1024-based). */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** Milliseconds as `1h02m`, `3m05s`, `12s` or `850ms`. */
export function formatAge(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  return `${h}h${String(m % 60).padStart(2, "0")}m`;
}
