/**
 * How the admin CLI shows each resource: the answer shapes it reads and the columns of its
 * tables. The shapes are the admin API's answers (cloud/admin/schemas.ts); only the fields a
 * table shows are named here.
 */
import { type Column, formatAge, formatBytes, renderFields } from "./table.js";

export interface AgentView {
  readonly id: string;
  readonly name: string;
  readonly location: string;
  readonly connected: boolean;
  readonly connectedAt: string | null;
  readonly remoteAddress: string | null;
  readonly version: string | null;
  readonly tunnels: number;
  readonly lastSeenAt?: string | null;
  readonly singleInstance?: boolean;
  /** Each live tunnel (absent from relays that predate it). */
  readonly links?: ReadonlyArray<{
    readonly remoteAddress: string;
    readonly hostName: string | null;
    readonly instanceId: string | null;
  }>;
}

/** The distinct instances an agent's tunnels come from: `host (address)` each. */
function instancesOf(a: AgentView): string {
  const seen = new Map<string, string>();
  for (const l of a.links ?? []) {
    const address = l.remoteAddress.slice(0, l.remoteAddress.lastIndexOf(":"));
    const key = l.instanceId ?? `address ${address}`;
    if (!seen.has(key)) seen.set(key, l.hostName === null ? address : `${l.hostName} (${address})`);
  }
  return [...seen.values()].join(", ");
}

export interface ClientView {
  readonly id: string;
  readonly name: string;
  readonly location: string;
  readonly username: string;
  readonly lastUsedAt?: string | null;
  readonly lastAddress?: string | null;
}

export interface MappingView {
  readonly id: string;
  readonly virtualHost: string;
  readonly virtualPort: number | string;
  readonly internalHost: string;
  readonly internalPort: number | string;
  readonly location: string;
  readonly protocol: string;
  readonly description: string;
}

export interface ConnectionView {
  readonly id: string;
  readonly kind: string;
  readonly clientName: string | null;
  readonly remoteAddress: string;
  readonly virtualHost: string;
  readonly virtualPort: number;
  readonly internalHost: string;
  readonly internalPort: number;
  readonly mappingId: string;
  readonly relayId?: string;
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly ageMs: number;
}

export interface RelayView {
  readonly id: string;
  readonly self: boolean;
  readonly tunnelUrl: string | null;
  readonly adminUrl: string | null;
  readonly addresses: Readonly<Record<string, string>>;
  readonly version: string;
  readonly startedAt: string;
  readonly heartbeatAt: string;
  readonly live: boolean;
  readonly agents: number;
  readonly connections: number;
}

export interface AuditEvent {
  readonly time: string;
  readonly event: string;
  readonly message?: string;
  readonly [field: string]: unknown;
}

export interface AuditPage {
  readonly events: readonly AuditEvent[];
  readonly nextCursor: string | null;
}

export const agentColumns: readonly Column<AgentView>[] = [
  { header: "ID", value: (a) => a.id },
  { header: "NAME", value: (a) => a.name },
  { header: "LOCATION", value: (a) => a.location },
  { header: "STATUS", value: (a) => (a.connected ? "up" : "down") },
  { header: "TUNNELS", value: (a) => a.tunnels, right: true },
  { header: "SINCE", value: (a) => a.connectedAt },
  { header: "FROM", value: (a) => a.remoteAddress },
  { header: "VERSION", value: (a) => a.version },
  { header: "SINGLE", value: (a) => a.singleInstance === true },
  { header: "INSTANCES", value: (a) => instancesOf(a) },
];

export const clientColumns: readonly Column<ClientView>[] = [
  { header: "ID", value: (c) => c.id },
  { header: "NAME", value: (c) => c.name },
  { header: "LOCATION", value: (c) => c.location },
  { header: "USERNAME", value: (c) => c.username },
  { header: "LAST USED", value: (c) => c.lastUsedAt },
  { header: "FROM", value: (c) => c.lastAddress },
];

export const mappingColumns: readonly Column<MappingView>[] = [
  { header: "ID", value: (m) => m.id },
  { header: "VIRTUAL", value: (m) => `${m.virtualHost}:${m.virtualPort}` },
  { header: "INTERNAL", value: (m) => `${m.internalHost}:${m.internalPort}` },
  { header: "LOCATION", value: (m) => m.location },
  { header: "PROTOCOL", value: (m) => m.protocol },
  { header: "DESCRIPTION", value: (m) => m.description },
];

export const connectionColumns: readonly Column<ConnectionView>[] = [
  { header: "ID", value: (c) => c.id },
  { header: "KIND", value: (c) => c.kind },
  { header: "CLIENT", value: (c) => c.clientName },
  { header: "FROM", value: (c) => c.remoteAddress },
  { header: "VIRTUAL", value: (c) => `${c.virtualHost}:${c.virtualPort}` },
  { header: "INTERNAL", value: (c) => `${c.internalHost}:${c.internalPort}` },
  { header: "MAPPING", value: (c) => c.mappingId },
  { header: "UP", value: (c) => formatBytes(c.bytesUp), right: true },
  { header: "DOWN", value: (c) => formatBytes(c.bytesDown), right: true },
  { header: "AGE", value: (c) => formatAge(c.ageMs), right: true },
  { header: "RELAY", value: (c) => c.relayId },
];

export const relayColumns: readonly Column<RelayView>[] = [
  { header: "ID", value: (r) => (r.self ? `${r.id} *` : r.id) },
  { header: "STATUS", value: (r) => (r.live ? "live" : "silent") },
  { header: "TUNNEL URL", value: (r) => r.tunnelUrl ?? "(not advertised)" },
  { header: "SOCKS", value: (r) => r.addresses["socks"] },
  { header: "VERSION", value: (r) => r.version },
  { header: "UP SINCE", value: (r) => r.startedAt },
  { header: "HEARTBEAT", value: (r) => r.heartbeatAt },
  { header: "AGENTS", value: (r) => r.agents, right: true },
  { header: "CONNECTIONS", value: (r) => r.connections, right: true },
];

/** Fields shown beside the event name; the rest is in `--json`. */
const AUDIT_DETAIL = ["client", "agent", "mapping", "host", "port", "remote", "reason"] as const;

export const auditColumns: readonly Column<AuditEvent>[] = [
  { header: "TIME", value: (e) => e.time },
  { header: "EVENT", value: (e) => e.event },
  {
    header: "DETAIL",
    value: (e) =>
      AUDIT_DETAIL.filter((k) => e[k] !== undefined && e[k] !== null)
        .map((k) => `${k}=${typeof e[k] === "object" ? JSON.stringify(e[k]) : String(e[k])}`)
        .join(" "),
  },
  { header: "MESSAGE", value: (e) => e.message },
];

export function renderCheck(r: { reachable: boolean; latencyMs?: number; error?: string }): string {
  return r.reachable
    ? `reachable in ${r.latencyMs ?? "?"} ms\n`
    : renderFields([
        ["reachable", false],
        ["error", r.error],
      ]);
}

export interface FtpCheckStep {
  readonly step: string;
  readonly ok: boolean;
  readonly detail: string;
  readonly code?: string;
  readonly fix?: string;
}

export interface FtpCheckAnswer {
  readonly ok: boolean;
  readonly steps: readonly FtpCheckStep[];
}

/** One line per step, ✓ or ✗, and under a failed step its code and the fix. */
export function renderFtpCheck(r: FtpCheckAnswer): string {
  const width = Math.max(0, ...r.steps.map((s) => s.step.length));
  const lines: string[] = [];
  for (const s of r.steps) {
    lines.push(`${s.ok ? "✓" : "✗"} ${s.step.padEnd(width)}  ${s.detail}`);
    const pad = `  ${" ".repeat(width)}  `;
    if (s.code) lines.push(`${pad}${s.code}`);
    // a passed step may carry a note: what works only because a client ignores something
    if (s.fix) lines.push(`${pad}${s.ok ? "note" : "fix"}: ${s.fix}`);
  }
  lines.push(r.ok ? "FTP check passed" : "FTP check failed");
  return `${lines.join("\n")}\n`;
}

interface KindDiff {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly changed: readonly string[];
  readonly unchanged: number;
}

export interface ImportAnswer {
  readonly dryRun: boolean;
  readonly agents: KindDiff;
  readonly clients: KindDiff;
  readonly mappings: KindDiff;
}

/** `agents: +1 added, -2 removed, ~0 changed, 3 unchanged`, and the ids. */
export function renderImport(r: ImportAnswer): string {
  const lines = [r.dryRun ? "dry run: nothing was changed; the import would do this:" : "imported:"];
  for (const kind of ["agents", "clients", "mappings"] as const) {
    const d = r[kind];
    lines.push(
      `  ${kind.padEnd(8)} +${d.added.length} added, -${d.removed.length} removed, ~${d.changed.length} changed, ${d.unchanged} unchanged`,
    );
    for (const [sign, ids] of [
      ["+", d.added],
      ["-", d.removed],
      ["~", d.changed],
    ] as const) {
      for (const id of ids) lines.push(`    ${sign} ${id}`);
    }
  }
  return `${lines.join("\n")}\n`;
}
