/** How numbers, sizes, times and targets read on every page. */

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"] as const;

/** Bytes with binary prefixes (IEC 80000-13): `317 B`, `8.0 MiB`. */
export function bytes(n: number): string {
  let v = n;
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${UNITS[i]}`;
}

/** Bytes per second. */
export function rate(bps: number): string {
  return `${bytes(Math.round(bps))}/s`;
}

/** A duration, in ms, the way a person says it: `4 s`, `3 min 12 s`, `2 h 5 min`. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** `3 min ago`, or `never`. */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "never";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const ms = now - t;
  if (ms < 5000) return "just now";
  return `${duration(ms).replace(/ \d+ s$/, "")} ago`;
}

const pad = (n: number): string => String(n).padStart(2, "0");

/** Local date and time to the second, `2026-12-01 21:03:06`: unambiguous in every locale. */
export function when(iso: string | null | undefined): string {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** `host:port`, IPv6 in brackets (RFC 3986 §3.2.2). */
export function target(host: string, port: number | string): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** A `<input type="datetime-local">` value for an ISO time (local time, to the minute). */
export function toLocalInput(iso: string): string {
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** The ISO time of a `datetime-local` value, or undefined when it is empty or not a time. */
export function fromLocalInput(value: string): string | undefined {
  if (value === "") return undefined;
  const t = new Date(value).getTime();
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
}
