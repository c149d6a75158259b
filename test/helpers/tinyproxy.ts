/**
 * A private tinyproxy (Debian's `tinyproxy`) on a free loopback port: the HTTP CONNECT proxy a
 * corporate network puts between the agent and the relay. It runs in the foreground (`-d`) with
 * its configuration and log in a temp dir of its own, takes any CONNECT port, and asks for
 * basic auth when given credentials. tinyproxy answers a request without credentials with 407
 * and one with wrong credentials with 401.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ChildRegistry, defaultRegistry, requireCommand, terminate } from "./clients.js";
import { freePort, waitForPort } from "./ports.js";

export interface ProxyCredentials {
  readonly user: string;
  readonly password: string;
}

export interface TinyproxyOptions {
  /** BasicAuth: the one user the proxy lets through; none means no authentication. */
  readonly credentials?: ProxyCredentials;
  readonly registry?: ChildRegistry;
}

export interface Tinyproxy {
  readonly port: number;
  /** `http://[user:password@]127.0.0.1:port`, the form HTTPS_PROXY takes. */
  url(credentials?: ProxyCredentials): string;
  /** Every CONNECT the proxy received so far, as its `host:port`, in order. */
  connects(): Promise<string[]>;
  /** The proxy's log and stdio, for failure messages. */
  readLog(): Promise<string>;
  /** Stops the proxy and removes its temp dir. */
  close(): Promise<void>;
}

/** Ports tried when another process takes the free one between freePort() and tinyproxy's bind. */
const START_ATTEMPTS = 3;

export async function startTinyproxy(o: TinyproxyOptions = {}): Promise<Tinyproxy> {
  const command = requireCommand("tinyproxy");
  const registry = o.registry ?? defaultRegistry;
  const dir = await mkdtemp(join(tmpdir(), "underpass-tinyproxy-"));
  const logFile = join(dir, "tinyproxy.log");
  const stdioFile = join(dir, "stdio.log");
  const readLog = async (): Promise<string> =>
    [
      "--- tinyproxy log",
      (await readFile(logFile, "utf8").catch(() => "")).trimEnd(),
      "--- tinyproxy stdio",
      (await readFile(stdioFile, "utf8").catch(() => "")).trimEnd(),
    ].join("\n");
  let lastFailure = "";
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const port = await freePort();
    const conf = join(dir, "tinyproxy.conf");
    await writeFile(
      conf,
      [
        `Port ${port}`,
        "Listen 127.0.0.1",
        "Timeout 60",
        "MaxClients 64",
        "Allow 127.0.0.1",
        `LogFile "${logFile}"`,
        "LogLevel Connect",
        "DisableViaHeader Yes",
        // no ConnectPort line: CONNECT to any port (the relay's is random)
        ...(o.credentials ? [`BasicAuth ${o.credentials.user} ${o.credentials.password}`] : []),
        "",
      ].join("\n"),
    );
    const fd = openSync(stdioFile, "a");
    let child: ChildProcess;
    try {
      child = spawn(command, ["-d", "-c", conf], { detached: true, stdio: ["ignore", fd, fd] });
    } finally {
      closeSync(fd);
    }
    registry.track(child);
    const stop = async (): Promise<void> => {
      await terminate(child, 3000);
      registry.forget(child);
    };
    try {
      await waitForPort(port, "127.0.0.1", 10_000);
    } catch (err) {
      await stop();
      lastFailure = `${err instanceof Error ? err.message : String(err)}\n${await readLog()}`;
      continue;
    }
    return {
      port,
      url: (c) =>
        `http://${c ? `${encodeURIComponent(c.user)}:${encodeURIComponent(c.password)}@` : ""}127.0.0.1:${port}`,
      async connects() {
        const log = await readFile(logFile, "utf8").catch(() => "");
        return [...log.matchAll(/Request \(file descriptor \d+\): CONNECT (\S+) HTTP\//g)].map((m) => m[1]!);
      },
      readLog,
      async close() {
        await stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  await rm(dir, { recursive: true, force: true });
  throw new Error(`tinyproxy did not start: ${lastFailure}`);
}
