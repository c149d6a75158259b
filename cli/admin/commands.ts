/**
 * `underpass agents|clients|mappings|connections|relays|audit …`, `underpass export|import`: the admin
 * API from a terminal or a script. Human tables by default, `--json` for scripts. Exit codes:
 * 0 success, 1 the API refused (its code and message are printed) or could not be reached,
 * 2 bad usage.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { Command, CommanderError, Option } from "commander";
import { AdminClient, ApiRefusal, ApiUnreachable } from "./api-client.js";
import { type Column, renderFields, renderTable } from "./table.js";
import {
  type AgentView,
  type AuditPage,
  agentColumns,
  auditColumns,
  type ClientView,
  type ConnectionView,
  clientColumns,
  connectionColumns,
  type ImportAnswer,
  type MappingView,
  mappingColumns,
  type RelayView,
  relayColumns,
  renderCheck,
  renderFtpCheck,
  renderImport,
} from "./views.js";

/** Where the output goes; tests pass buffers, the CLI passes the process's streams. */
export interface Io {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
}

/** Usage errors: exit 2. */
class UsageError extends Error {}

const DEFAULT_ADMIN_URL = "http://127.0.0.1:8081";

interface CommonOptions {
  adminUrl?: string;
  token?: string;
  json?: boolean;
}

/** The commands this module serves (the first word after `underpass`). */
export const ADMIN_COMMANDS: ReadonlySet<string> = new Set([
  "agents",
  "clients",
  "mappings",
  "connections",
  "relays",
  "audit",
  "export",
  "import",
]);

/** `host:port`, `host:30000-30010` or `[v6]:port` → the API's host and port fields. */
export function parseEndpoint(value: string, what: string): { host: string; port: number | string } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5}(?:-\d{1,5})?)$/.exec(value.trim());
  if (!m) throw new UsageError(`${what} "${value}" is not host:port or host:start-end`);
  const host = m[1] ?? m[2]!;
  const port = m[3]!;
  return { host, port: /^\d+$/.test(port) ? Number(port) : port };
}

function integer(value: string, what: string): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`${what} must be a whole number, not "${value}"`);
  return Number(value);
}

/**
 * Builds the command tree. Each action answers its exit code through `setExit`: 0, or 1 when
 * what it checked failed (a check that ran but found the target unreachable).
 */
function buildProgram(io: Io, setExit: (code: number) => void): Command {
  const program = new Command("underpass")
    .description("Underpass admin commands (the relay's admin API)")
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showHelpAfterError();

  const common = (cmd: Command): Command =>
    cmd
      .addOption(new Option("--admin-url <url>", "admin API base URL (env UNDERPASS_ADMIN_URL)"))
      .addOption(new Option("--token <token>", "admin token (env UNDERPASS_ADMIN_TOKEN)"))
      .option("--json", "print the API's JSON answer instead of a table");

  /** Runs an action with the client, printing a refusal and setting the exit code. */
  const act =
    <A extends unknown[]>(
      fn: (
        client: AdminClient,
        o: CommonOptions & Record<string, unknown>,
        ...args: A
      ) => Promise<number | undefined>,
    ) =>
    async (...raw: unknown[]): Promise<void> => {
      // commander passes the positional arguments, then the options, then the command
      const cmd = raw[raw.length - 1] as Command;
      const o = cmd.optsWithGlobals() as CommonOptions & Record<string, unknown>;
      const args = raw.slice(0, raw.length - 2) as A;
      const missing = (ids: readonly string[]): void =>
        io.err(`warning: relays ${ids.join(", ")} did not answer; what they hold is not shown\n`);
      setExit((await fn(clientFor(o, io.env, missing), o, ...args)) ?? 0);
    };

  const print = (o: CommonOptions, value: unknown, human: () => string): void => {
    io.out(o.json ? `${JSON.stringify(value, null, 2)}\n` : human());
  };

  // ---- agents and clients: a name, a location and a secret shown once ----------------------
  const credentialed = <V extends { id: string; name: string; location: string }>(r: {
    readonly noun: "agent" | "client";
    readonly path: string;
    readonly secret: "token" | "password";
    readonly columns: readonly Column<V>[];
    readonly description: string;
    readonly locationHelp: string;
    readonly revokes: string;
    /** Extra lines after the secret (how to use it). */
    readonly howTo: (v: V, secret: string) => string;
    /** Fields shown beside the secret. */
    readonly shown: (v: V) => ReadonlyArray<readonly [string, unknown]>;
    /** Options of `add` beyond the location, and the body fields they give. */
    readonly addOptions?: (cmd: Command) => Command;
    readonly addBody?: (o: Record<string, unknown>) => Record<string, unknown>;
  }): Command => {
    const group = program.command(`${r.noun}s`).description(r.description);
    const withSecret = (o: CommonOptions, v: V & Record<string, unknown>): void => {
      const secret = String(v[r.secret]);
      print(
        o,
        v,
        () =>
          `${renderFields([...r.shown(v), [r.secret, secret]])}\nThe ${r.secret} is shown once.\n${r.howTo(v, secret)}`,
      );
    };
    common(group.command("list").description(`list ${r.noun}s`)).action(
      act(async (c, o) => {
        const list = await c.get<V[]>(r.path);
        print(o, list, () => renderTable(list, r.columns));
      }),
    );
    const add = group
      .command("add <name>")
      .description(`register a${r.noun === "agent" ? "n" : ""} ${r.noun}; its ${r.secret} is shown once`)
      .option("--location <location>", r.locationHelp, "default");
    common(r.addOptions?.(add) ?? add).action(
      act(async (c, o, name: string) => {
        const body = { name, location: o.location, ...r.addBody?.(o) };
        withSecret(o, await c.post<V & Record<string, unknown>>(r.path, body));
      }),
    );
    common(
      group
        .command("rm <id>")
        .description(`revoke a${r.noun === "agent" ? "n" : ""} ${r.noun}: ${r.revokes}`),
    ).action(
      act(async (c, o, id: string) => {
        await c.delete(`${r.path}/${encodeURIComponent(id)}`);
        print(o, { id, deleted: true }, () => `${r.noun} ${id} revoked\n`);
      }),
    );
    common(
      group
        .command("rotate <id>")
        .description(`issue a new ${r.secret} (shown once); the old one stops at once`),
    ).action(
      act(async (c, o, id: string) => {
        withSecret(
          o,
          await c.post<V & Record<string, unknown>>(`${r.path}/${encodeURIComponent(id)}/rotate`),
        );
      }),
    );
    return group;
  };

  const agents = credentialed<AgentView>({
    noun: "agent",
    path: "/v1/agents",
    secret: "token",
    columns: agentColumns,
    description: "on-premise agents and their tokens",
    locationHelp: "the location it serves",
    revokes: "its token stops, its tunnels close",
    shown: (a) => [
      ["id", a.id],
      ["name", a.name],
      ["location", a.location],
    ],
    howTo: (_a, token) =>
      `Start the agent on premises with:\n  UNDERPASS_RELAY_URL=wss://<relay host>:8443/tunnel UNDERPASS_AGENT_TOKEN=${token} underpass agent\n`,
    addOptions: (cmd) =>
      cmd.option("--single-instance", "refuse a second instance (agent process) while one is connected"),
    addBody: (o) => (o["singleInstance"] === true ? { singleInstance: true } : {}),
  });
  common(
    agents
      .command("set <id>")
      .description("rename an agent or change its single-instance flag; its token and tunnels stay")
      .option("--name <name>", "a new name")
      .option("--single-instance", "refuse a second instance while one is connected")
      .option("--no-single-instance", "let a second instance in (logged and audited)"),
  ).action(
    act(async (c, o, id: string) => {
      const body: Record<string, unknown> = {};
      if (typeof o["name"] === "string") body["name"] = o["name"];
      if (typeof o["singleInstance"] === "boolean") body["singleInstance"] = o["singleInstance"];
      if (Object.keys(body).length === 0)
        throw new UsageError("say what to change: --name, --single-instance or --no-single-instance");
      const a = await c.patch<AgentView>(`/v1/agents/${encodeURIComponent(id)}`, body);
      print(o, a, () => renderTable([a], agentColumns));
    }),
  );
  credentialed<ClientView>({
    noun: "client",
    path: "/v1/clients",
    secret: "password",
    columns: clientColumns,
    description: "SOCKS5 clients and their credentials",
    locationHelp: "the location whose mappings it may reach",
    revokes: "its connections are reset",
    shown: (c) => [
      ["id", c.id],
      ["name", c.name],
      ["location", c.location],
      ["username", c.username],
    ],
    howTo: (c, password) =>
      `Use it as SOCKS5 credentials, e.g.:\n  curl --proxy socks5h://${c.username}:${password}@<relay host>:1080 ftp://<virtual host>/\n`,
  });

  // ---- mappings ----------------------------------------------------------------------------
  const mappings = program.command("mappings").description("virtual host:port → internal host:port");
  common(mappings.command("list").description("list mappings")).action(
    act(async (c, o) => {
      const list = await c.get<MappingView[]>("/v1/mappings");
      print(o, list, () => renderTable(list, mappingColumns));
    }),
  );
  const mappingFields = (cmd: Command): Command =>
    cmd
      .option("--location <location>", "the location (and so the agents) that serve it")
      .addOption(
        new Option("--protocol <protocol>", "ftp follows the control channel").choices(["tcp", "ftp"]),
      )
      .option("--description <text>", "free text for operators");
  common(
    mappingFields(
      mappings
        .command("add <virtual> <internal>")
        .description("map virtual host:port (or host:start-end) to internal host:port (same range length)"),
    ),
  ).action(
    act(async (c, o, virtual: string, internal: string) => {
      const v = parseEndpoint(virtual, "virtual");
      const i = parseEndpoint(internal, "internal");
      const body: Record<string, unknown> = {
        virtualHost: v.host,
        virtualPort: v.port,
        internalHost: i.host,
        internalPort: i.port,
      };
      if (o.location !== undefined) body.location = o.location;
      if (o.protocol !== undefined) body.protocol = o.protocol;
      if (o.description !== undefined) body.description = o.description;
      const m = await c.post<MappingView>("/v1/mappings", body);
      print(o, m, () => renderTable([m], mappingColumns));
    }),
  );
  common(
    mappingFields(
      mappings
        .command("edit <id>")
        .description("change a mapping in place (ranges included)")
        .option("--virtual <host:port>", "new virtual side")
        .option("--internal <host:port>", "new internal side"),
    ),
  ).action(
    act(async (c, o, id: string) => {
      const body: Record<string, unknown> = {};
      if (typeof o.virtual === "string") {
        const v = parseEndpoint(o.virtual, "virtual");
        body.virtualHost = v.host;
        body.virtualPort = v.port;
      }
      if (typeof o.internal === "string") {
        const i = parseEndpoint(o.internal, "internal");
        body.internalHost = i.host;
        body.internalPort = i.port;
      }
      for (const k of ["location", "protocol", "description"] as const)
        if (o[k] !== undefined) body[k] = o[k];
      if (Object.keys(body).length === 0) throw new UsageError("nothing to change: give at least one option");
      const m = await c.patch<MappingView>(`/v1/mappings/${encodeURIComponent(id)}`, body);
      print(o, m, () => renderTable([m], mappingColumns));
    }),
  );
  common(mappings.command("rm <id>").description("delete a mapping: connections using it are reset")).action(
    act(async (c, o, id: string) => {
      await c.delete(`/v1/mappings/${encodeURIComponent(id)}`);
      print(o, { id, deleted: true }, () => `mapping ${id} deleted\n`);
    }),
  );
  common(mappings.command("check <id>").description("have an agent really dial the internal target")).action(
    act(async (c, o, id: string) => {
      const r = await c.post<{ reachable: boolean; latencyMs?: number; error?: string }>(
        `/v1/mappings/${encodeURIComponent(id)}/check`,
      );
      print(o, r, () => renderCheck(r));
      return r.reachable ? 0 : 1;
    }),
  );
  common(
    mappings
      .command("ftp-check <id>")
      .description("a real FTP session through the real path, step by step, with a fix for each failure")
      .option("--user <username>", "FTP user (default anonymous)")
      .option("--password <password>", "FTP password")
      .option("--path <path>", "directory to list", "/"),
  ).action(
    act(async (c, o, id: string) => {
      const body: Record<string, unknown> = { path: o.path };
      if (typeof o.user === "string") body.username = o.user;
      if (typeof o.password === "string") body.password = o.password;
      const r = await c.post<Parameters<typeof renderFtpCheck>[0]>(
        `/v1/mappings/${encodeURIComponent(id)}/ftp-check`,
        body,
      );
      print(o, r, () => renderFtpCheck(r));
      return r.ok ? 0 : 1;
    }),
  );

  // ---- connections -------------------------------------------------------------------------
  const connections = program.command("connections").description("live SOCKS connections");
  common(connections.command("list").description("list live connections with bytes each way")).action(
    act(async (c, o) => {
      const list = await c.get<ConnectionView[]>("/v1/connections");
      print(o, list, () => renderTable(list, connectionColumns));
    }),
  );
  common(connections.command("kill <id>").description("reset one live connection")).action(
    act(async (c, o, id: string) => {
      await c.delete(`/v1/connections/${encodeURIComponent(id)}`);
      print(o, { id, killed: true }, () => `connection ${id} killed\n`);
    }),
  );

  // ---- relays ------------------------------------------------------------------------------
  common(
    program
      .command("relays")
      .description("the relays of the cluster (* the one answering): live or not, what each holds"),
  ).action(
    act(async (c, o) => {
      const list = await c.get<RelayView[]>("/v1/relays");
      print(o, list, () => renderTable(list, relayColumns));
    }),
  );

  // ---- audit -------------------------------------------------------------------------------
  const audit = program.command("audit").description("the audit trail: denials, changes, agents, kills");
  common(
    audit
      .command("list")
      .description("audit events, newest first")
      .option("--since <time>", "ISO time or duration back from now (e.g. 1h, 30m)")
      .option("--until <time>", "ISO time")
      .option("--event <name>", "one event name, e.g. socks.denied")
      .option("--client <id>", "client id")
      .option("--agent <id>", "agent id")
      .option("--mapping <id>", "mapping id")
      .option("--limit <n>", "events per page", "50")
      .option("--cursor <cursor>", "the page after this cursor"),
  ).action(
    act(async (c, o) => {
      const page = await c.get<AuditPage>("/v1/audit", {
        since: sinceOf(o.since),
        until: o.until as string | undefined,
        event: o.event as string | undefined,
        client: o.client as string | undefined,
        agent: o.agent as string | undefined,
        mapping: o.mapping as string | undefined,
        limit: integer(String(o.limit), "--limit"),
        cursor: o.cursor as string | undefined,
      });
      print(o, page, () => {
        const more = page.nextCursor ? `\nmore: underpass audit list --cursor ${page.nextCursor}\n` : "";
        return renderTable(page.events, auditColumns) + more;
      });
    }),
  );

  // ---- export / import ---------------------------------------------------------------------
  common(
    program
      .command("export")
      .description("the whole configuration as one versioned JSON document (secrets stay hashed)")
      .option("--out <file>", "write to a file instead of standard output"),
  ).action(
    act(async (c, o) => {
      const doc = await c.get<unknown>("/v1/export");
      const text = `${JSON.stringify(doc, null, 2)}\n`;
      if (typeof o.out === "string") {
        writeFileSync(o.out, text, { mode: 0o600 });
        io.err(`configuration written to ${o.out}\n`);
      } else io.out(text);
    }),
  );
  common(
    program
      .command("import <file>")
      .description("restore a configuration: validated first, applied all or nothing")
      .option("--dry-run", "only show what would change"),
  ).action(
    act(async (c, o, file: string) => {
      let doc: unknown;
      try {
        doc = JSON.parse(readFileSync(file, "utf8"));
      } catch (err) {
        throw new UsageError(`cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
      }
      const r = await c.post<ImportAnswer>("/v1/import", doc, o.dryRun ? { dryRun: true } : undefined);
      print(o, r, () => renderImport(r));
    }),
  );

  return program;
}

function clientFor(
  o: CommonOptions,
  env: NodeJS.ProcessEnv,
  onMissingRelays: (relayIds: readonly string[]) => void,
): AdminClient {
  const baseUrl = o.adminUrl ?? env.UNDERPASS_ADMIN_URL ?? DEFAULT_ADMIN_URL;
  const token = o.token ?? env.UNDERPASS_ADMIN_TOKEN;
  if (!token) throw new UsageError("no admin token: set UNDERPASS_ADMIN_TOKEN or pass --token");
  try {
    const u = new URL(baseUrl);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("not http(s)");
  } catch {
    throw new UsageError(`admin URL "${baseUrl}" is not an http:// or https:// URL`);
  }
  return new AdminClient({ baseUrl, token, onMissingRelays });
}

/** `1h`, `30m`, `45s`, `2d` back from now, or an ISO time as given. */
function sinceOf(value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  const m = /^(\d+)([smhd])$/.exec(value);
  if (!m) return value;
  const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "s" | "m" | "h" | "d"];
  return new Date(Date.now() - Number(m[1]) * unit).toISOString();
}

/** Runs `underpass <argv…>` for an admin command; answers the exit code. */
export async function runAdminCommand(argv: readonly string[], io: Io): Promise<number> {
  let code = 0;
  const program = buildProgram(io, (c) => {
    code = c;
  });
  try {
    await program.parseAsync([...argv], { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end with exit code 0; every other parse failure is usage
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof UsageError) {
      io.err(`underpass: ${err.message}\n`);
      return 2;
    }
    if (err instanceof ApiRefusal) {
      io.err(`underpass: ${err.code} (HTTP ${err.status}): ${err.message}\n`);
      for (const i of err.issues) {
        const line = `${i.path || "(body)"}: ${i.message}`;
        if (!err.message.includes(line)) io.err(`  ${line}\n`);
      }
      if (err.conflictsWith) io.err(`  conflicts with mapping ${err.conflictsWith}\n`);
      return 1;
    }
    if (err instanceof ApiUnreachable) {
      io.err(`underpass: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  return code;
}
