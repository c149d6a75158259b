/**
 * `underpass cloud` and `underpass agent` as real child processes, started from the built CLI
 * (`node dist/cli/main.js`) with their configuration in the environment, as an operator runs
 * them; and an admin API client that speaks HTTP to the relay with fetch.
 *
 * Every process is spawned in its own process group and tracked in a ChildRegistry, so a
 * test's `after()` (and, as a last resort, process exit) ends whatever is still running.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ChildRegistry, defaultRegistry, killTree, terminate } from "./clients.js";
import { freePortRange, waitFor } from "./ports.js";
import type { Json } from "./stack.js";

/** The repository root (this file runs as dist/test/helpers/processes.js). */
export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
/** The built CLI, what the package's `bin` points at. */
export const CLI = join(REPO_ROOT, "dist", "cli", "main.js");

/** Per-stream cap on kept output, in characters; beyond it the oldest half is dropped. */
const MAX_OUTPUT_CHARS = 4 * 1024 * 1024;
/** Grace between SIGTERM and SIGKILL when a process is stopped, in ms. */
const STOP_GRACE_MS = 5000;

/**
 * This process's environment without any UNDERPASS_* or proxy variable (a developer's own
 * settings must not leak into a test), plus `extra`; undefined values are left out.
 */
export function cliEnv(extra: Readonly<Record<string, string | undefined>> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("UNDERPASS_") || /^(all|ftp|http|https|no)_proxy$/i.test(k)) continue;
    env[k] = v;
  }
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

/** One line of a pino log (JSON on stderr). */
export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [field: string]: unknown;
}

class TailBuffer {
  #text = "";
  push(chunk: string): void {
    this.#text += chunk;
    if (this.#text.length > MAX_OUTPUT_CHARS) this.#text = this.#text.slice(-MAX_OUTPUT_CHARS / 2);
  }
  get text(): string {
    return this.#text;
  }
}

export interface CliProcess {
  readonly child: ChildProcess;
  /** `underpass <args>` with the UNDERPASS_* variables, for failure messages (secrets hidden). */
  readonly command: string;
  stdout(): string;
  stderr(): string;
  /** The JSON log lines written to stderr so far. */
  logs(): LogLine[];
  /** True until the process has exited. */
  running(): boolean;
  /** Settles when the process exits. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first match of `re` in stdout (or stderr); rejects at `timeoutMs` or on exit. */
  waitForOutput(
    re: RegExp,
    options?: { stream?: "stdout" | "stderr"; timeoutMs?: number },
  ): Promise<RegExpExecArray>;
  /** Resolves once `count` log lines satisfy `match`; rejects at `timeoutMs` or on exit. */
  waitForLog(
    match: (line: LogLine) => boolean,
    options?: { count?: number; timeoutMs?: number },
  ): Promise<LogLine[]>;
  /** Sends `signal` to the process group at once (SIGKILL: a crash). */
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, SIGKILL after a grace period; resolves once it has exited. */
  stop(): Promise<void>;
  /** The command, exit status and output, for assertion messages. */
  describe(): string;
}

/** Variable names whose values never appear in a failure message. */
const SECRET_ENV = /TOKEN|PASSWORD|SECRET/;

/** Runs `node dist/cli/main.js <args>` with `env` as its whole environment. */
export function spawnCli(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  registry: ChildRegistry = defaultRegistry,
): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: REPO_ROOT,
    env,
    detached: true, // own process group, so killTree reaches it and nothing else
    stdio: ["ignore", "pipe", "pipe"],
  });
  registry.track(child);
  const out = new TailBuffer();
  const err = new TailBuffer();
  const wake = new Set<() => void>();
  const poke = (): void => {
    for (const w of [...wake]) w();
  };
  child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    out.push(d);
    poke();
  });
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    err.push(d);
    poke();
  });
  let status: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    // 'close' waits for the pipes, so every line the process wrote has been read by then.
    child.once("close", (code, signal) => {
      status = { code, signal };
      registry.forget(child);
      poke();
      resolve(status);
    });
    child.once("error", (e) => {
      status = { code: null, signal: null };
      err.push(`cannot start ${process.execPath}: ${e.message}\n`);
      poke();
      resolve(status);
    });
  });
  const shownEnv = Object.entries(env)
    .filter(([k]) => k.startsWith("UNDERPASS_") || k === "TMPDIR")
    .map(([k, v]) => `${k}=${SECRET_ENV.test(k) ? "***" : v}`);
  const command = [...shownEnv, "underpass", ...args].join(" ");

  const logs = (): LogLine[] => {
    const lines: LogLine[] = [];
    for (const raw of err.text.split("\n")) {
      if (!raw.startsWith("{")) continue;
      try {
        const parsed = JSON.parse(raw) as LogLine;
        if (typeof parsed.msg === "string") lines.push(parsed);
      } catch {
        // a line cut by the tail buffer, or not a log line
      }
    }
    return lines;
  };
  const describe = (): string =>
    [
      `$ ${command}`,
      status === undefined ? "-> still running" : `-> exit code ${status.code}, signal ${status.signal}`,
      "--- stdout",
      out.text.trimEnd(),
      "--- stderr",
      err.text.trimEnd(),
    ].join("\n");

  /** Resolves with `probe()`'s first truthy value, re-checked on every output chunk. */
  const until = <T>(probe: () => T | undefined, timeoutMs: number, what: string): Promise<T> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const value = probe();
        if (value !== undefined) done(undefined, value);
        else if (status !== undefined) done(new Error(`process exited before ${what}\n${describe()}`));
      };
      const done = (e: Error | undefined, value?: T): void => {
        clearTimeout(timer);
        wake.delete(check);
        if (e) reject(e);
        else resolve(value as T);
      };
      const timer = setTimeout(
        () => done(new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${describe()}`)),
        timeoutMs,
      );
      wake.add(check);
      check();
    });

  return {
    child,
    command,
    stdout: () => out.text,
    stderr: () => err.text,
    logs,
    running: () => status === undefined,
    exited,
    waitForOutput(re, { stream = "stdout", timeoutMs = 20_000 } = {}) {
      const source = stream === "stdout" ? out : err;
      return until(() => re.exec(source.text) ?? undefined, timeoutMs, `${re} on ${stream}`);
    },
    waitForLog(match, { count = 1, timeoutMs = 20_000 } = {}) {
      return until(
        () => {
          const hits = logs().filter(match);
          return hits.length >= count ? hits : undefined;
        },
        timeoutMs,
        `${count} matching log line(s)`,
      );
    },
    kill(signal = "SIGKILL") {
      killTree(child, signal);
    },
    async stop() {
      await terminate(child, STOP_GRACE_MS);
      await exited;
    },
    describe,
  };
}

// ---------------------------------------------------------------------------------------------
// The admin API over HTTP

export class AdminClient {
  constructor(
    readonly baseUrl: string,
    readonly token: string,
  ) {}

  /** One request; the body is parsed as JSON when there is one. */
  async request(method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  /** A request that must answer `status`; returns the body. */
  async expect(method: string, path: string, body: unknown, status: number): Promise<Json> {
    const r = await this.request(method, path, body);
    if (r.status !== status) throw new Error(`${method} ${path} → ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  addAgent(name: string, location?: string): Promise<{ id: string; token: string }> {
    return this.expect("POST", "/v1/agents", { name, ...(location ? { location } : {}) }, 201);
  }

  addClient(name: string, location?: string): Promise<{ id: string; username: string; password: string }> {
    return this.expect("POST", "/v1/clients", { name, ...(location ? { location } : {}) }, 201);
  }

  addMapping(body: Record<string, unknown>): Promise<{ id: string }> {
    return this.expect("POST", "/v1/mappings", body, 201);
  }

  /** The agent's entry in GET /v1/agents. */
  async agent(id: string): Promise<Json> {
    const list: Json[] = await this.expect("GET", "/v1/agents", undefined, 200);
    const found = list.find((a) => a.id === id);
    if (found === undefined) throw new Error(`agent ${id} is not in GET /v1/agents`);
    return found;
  }

  /** Polls GET /v1/agents until the agent is connected; returns its entry. */
  /** Until the agent is connected; with `relayId`, until it has a tunnel on that relay of the cluster. */
  waitAgentConnected(id: string, timeoutMs = 20_000, relayId?: string): Promise<Json> {
    return waitFor(
      async () => {
        const a = await this.agent(id);
        if (relayId !== undefined) return a.links.some((l: Json) => l.relayId === relayId) ? a : undefined;
        return a.connected === true ? a : undefined;
      },
      {
        timeoutMs,
        intervalMs: 100,
        what: `agent ${id} connected${relayId ? ` to ${relayId}` : ""} in GET /v1/agents`,
      },
    );
  }
}

// ---------------------------------------------------------------------------------------------
// underpass cloud / underpass agent

export interface CloudPorts {
  readonly tunnel: number;
  readonly socks: number;
  readonly admin: number;
}

export interface CloudOptions {
  /** UNDERPASS_DATA_DIR; the caller creates and removes it. */
  readonly dataDir: string;
  readonly adminToken: string;
  /** Fixed ports (a restart on the ports of a previous run); fresh free ports otherwise. */
  readonly ports?: CloudPorts;
  /** More environment, e.g. UNDERPASS_TLS_CERT / UNDERPASS_TLS_KEY. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly registry?: ChildRegistry;
  /** Bound on the start, in ms. */
  readonly startTimeoutMs?: number;
}

export interface CloudProcess extends CliProcess {
  readonly ports: CloudPorts;
  readonly admin: AdminClient;
  /** ws:// (or wss:// with TLS) URL of the tunnel endpoint on 127.0.0.1. */
  readonly relayUrl: string;
}

/** Starts of `underpass cloud` on fresh ports before giving up (another process took one). */
const CLOUD_START_ATTEMPTS = 3;

/**
 * Starts `underpass cloud` on 127.0.0.1 and resolves once its admin API answers and its SOCKS
 * and tunnel ports accept. Fresh ports come from below the kernel's ephemeral range, so that
 * a restart on the same ports does not race with outgoing connections.
 */
export async function startCloud(o: CloudOptions): Promise<CloudProcess> {
  let lastFailure = "";
  for (let attempt = 1; attempt <= CLOUD_START_ATTEMPTS; attempt++) {
    const ports = o.ports ?? (await freeCloudPorts());
    const tls = Boolean(o.env?.["UNDERPASS_TLS_CERT"]);
    const proc = spawnCli(
      ["cloud"],
      cliEnv({ ...cloudEnv(ports, o.dataDir), UNDERPASS_ADMIN_TOKEN: o.adminToken, ...o.env }),
      o.registry,
    );
    const admin = new AdminClient(`http://127.0.0.1:${ports.admin}`, o.adminToken);
    try {
      await proc.waitForLog(isRelayListening, { timeoutMs: o.startTimeoutMs ?? 20_000 });
      await admin.expect("GET", "/healthz", undefined, 200);
    } catch (err) {
      await proc.stop();
      lastFailure = err instanceof Error ? err.message : String(err);
      if (o.ports === undefined && /EADDRINUSE/.test(proc.stderr())) continue;
      throw new Error(`underpass cloud did not start: ${lastFailure}`);
    }
    return {
      ...proc,
      ports,
      admin,
      relayUrl: `${tls ? "wss" : "ws"}://127.0.0.1:${ports.tunnel}/tunnel`,
    };
  }
  throw new Error(`underpass cloud did not start after ${CLOUD_START_ATTEMPTS} attempts: ${lastFailure}`);
}

/** Three consecutive free ports below the kernel's ephemeral range. */
export async function freeCloudPorts(): Promise<CloudPorts> {
  const span = await freePortRange(3);
  return { tunnel: span.start, socks: span.start + 1, admin: span.start + 2 };
}

/** The listen addresses (127.0.0.1 `ports`) and data dir of an `underpass cloud`. */
export function cloudEnv(ports: CloudPorts, dataDir: string): Record<string, string> {
  return {
    UNDERPASS_TUNNEL_LISTEN: `127.0.0.1:${ports.tunnel}`,
    UNDERPASS_SOCKS_LISTEN: `127.0.0.1:${ports.socks}`,
    UNDERPASS_ADMIN_LISTEN: `127.0.0.1:${ports.admin}`,
    UNDERPASS_DATA_DIR: dataDir,
  };
}

/** The relay's log line once all three servers listen. */
export function isRelayListening(line: LogLine): boolean {
  return line.msg === "relay listening";
}

export interface AgentProcessOptions {
  readonly relayUrl: string;
  readonly token: string;
  /** UNDERPASS_ALLOW; unset lets the relay decide alone. */
  readonly allow?: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly registry?: ChildRegistry;
}

/** Starts `underpass agent`; it connects on its own (see `AdminClient.waitAgentConnected`). */
export function startAgentProcess(o: AgentProcessOptions): CliProcess {
  return spawnCli(
    ["agent"],
    cliEnv({
      UNDERPASS_RELAY_URL: o.relayUrl,
      UNDERPASS_AGENT_TOKEN: o.token,
      UNDERPASS_ALLOW: o.allow,
      ...o.env,
    }),
    o.registry,
  );
}

/**
 * Splits a command line as a POSIX shell would for words: blanks separate, single quotes keep
 * everything literally, double quotes keep everything but `\"` and `\\`, a backslash outside
 * quotes escapes the next character. Anything a shell would expand or redirect (`$`, `` ` ``,
 * `|`, `;`, `&`, `<`, `>`, `*`, `?`) outside single quotes is refused rather than guessed at.
 */
export function splitCommandLine(line: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated single quote in: ${line}`);
      word += line.slice(i + 1, end);
      inWord = true;
      i = end;
    } else if (c === '"') {
      inWord = true;
      for (i++; ; i++) {
        if (i >= line.length) throw new Error(`unterminated double quote in: ${line}`);
        const d = line[i]!;
        if (d === '"') break;
        if (d === "$" || d === "`") throw new Error(`"${d}" inside double quotes is not supported: ${line}`);
        if (d === "\\" && (line[i + 1] === '"' || line[i + 1] === "\\")) word += line[++i];
        else word += d;
      }
    } else if (c === "\\") {
      if (i + 1 >= line.length) throw new Error(`trailing backslash in: ${line}`);
      word += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else if (/[$`|;&<>*?(){}]/.test(c)) {
      throw new Error(`"${c}" outside quotes is not supported: ${line}`);
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}
