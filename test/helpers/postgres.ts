/**
 * A private PostgreSQL cluster per test run: `initdb` into a temp dir and `postgres` on a free
 * loopback port, its socket in the same dir — never the system's service. PostgreSQL refuses
 * to run as root, so as root the cluster belongs to the unprivileged `postgres` account that
 * Debian's package creates (`runuser`); as anyone else, to that user.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, waitFor } from "./ports.js";

/** Where Debian puts the server binaries (`postgresql-NN`); the newest installed wins. */
export function postgresBinDir(): string | null {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, "bin", "postgres")))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], "bin") : null;
}

export interface PostgresCluster {
  readonly port: number;
  /** `postgres://underpass@127.0.0.1:<port>/<db>` for a database made by `createDatabase`. */
  url(database: string): string;
  /** A fresh, empty database. */
  createDatabase(name: string): Promise<string>;
  /** Stops the server fast (`SIGINT`), as a crash would not; `start()` again on the same port and data. */
  stop(): Promise<void>;
  /** Kills the server with SIGKILL: what an outage looks like to the relays. */
  kill(): Promise<void>;
  start(): Promise<void>;
  /** Stops it and removes its directory. */
  close(): Promise<void>;
}

const USER = "underpass";

function asOwner(owner: string | null, cmd: string, args: readonly string[]): [string, string[]] {
  return owner === null ? [cmd, [...args]] : ["runuser", ["-u", owner, "--", cmd, ...args]];
}

export async function startPostgres(): Promise<PostgresCluster> {
  const bin = postgresBinDir();
  if (bin === null)
    throw new Error("PostgreSQL is not installed (Debian package postgresql); .ci/run installs it");
  const owner = process.getuid?.() === 0 ? "postgres" : null;
  const dir = mkdtempSync(join(tmpdir(), "underpass-pg-"));
  const data = join(dir, "data");
  if (owner !== null) {
    const uid = Number(execFileSync("id", ["-u", owner], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", owner], { encoding: "utf8" }).trim());
    chownSync(dir, uid, gid);
  }
  chmodSync(dir, 0o700);
  const [initCmd, initArgs] = asOwner(owner, join(bin, "initdb"), [
    "-D",
    data,
    "-U",
    USER,
    "-A",
    "trust",
    "--no-sync",
    "-E",
    "UTF8",
    "--locale=C",
  ]);
  execFileSync(initCmd, initArgs, { stdio: "pipe" });
  const port = await freePort();
  let server: ChildProcess | null = null;

  const psql = (sql: string, db = "postgres"): string => {
    const [cmd, args] = asOwner(owner, join(bin, "psql"), [
      "-h",
      dir,
      "-p",
      String(port),
      "-U",
      USER,
      "-d",
      db,
      "-v",
      "ON_ERROR_STOP=1",
      "-qAtc",
      sql,
    ]);
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  };

  const start = async (): Promise<void> => {
    const [cmd, args] = asOwner(owner, join(bin, "postgres"), [
      "-D",
      data,
      "-p",
      String(port),
      "-k",
      dir,
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "fsync=off",
      "-c",
      "max_connections=200",
    ]);
    const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr?.on("data", (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-4000);
    });
    server = child;
    await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`postgres exited ${child.exitCode}: ${stderr}`);
        try {
          psql("select 1");
          return true;
        } catch {
          return undefined;
        }
      },
      { timeoutMs: 30_000, intervalMs: 100, what: "PostgreSQL to accept connections" },
    );
  };

  const halt = async (signal: NodeJS.Signals): Promise<void> => {
    const child = server;
    server = null;
    if (child === null || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    // the postmaster itself, not runuser in front of it (SIGKILL cannot be passed on)
    const pid = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
    try {
      process.kill(pid, signal);
    } catch {
      child.kill(signal);
    }
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 15_000))]);
    if (child.exitCode === null) {
      child.kill("SIGKILL");
      await exited;
    }
  };

  await start();
  return {
    port,
    url: (database) => `postgres://${USER}@127.0.0.1:${port}/${database}`,
    async createDatabase(name) {
      psql(`create database "${name}"`);
      return `postgres://${USER}@127.0.0.1:${port}/${name}`;
    },
    stop: () => halt("SIGINT"),
    kill: () => halt("SIGKILL"),
    start,
    async close() {
      await halt("SIGINT");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
