/** What the numbers were measured on, and with which versions of the peers. */
import { spawnSync } from "node:child_process";
import { cpus, loadavg, release, totalmem, version } from "node:os";
import { findCommand } from "../helpers/clients.js";

export interface MachineInfo {
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly node: string;
  readonly kernel: string;
  readonly date: string;
  readonly loadAverageAtStart: readonly number[];
  /** The commit measured, with "+changes" when the working tree differs from it. */
  readonly commit: string;
  readonly tools: Readonly<Record<string, string>>;
}

/** First line of `cmd args` (stdout or stderr), or "not installed". */
function versionOf(cmd: string, args: readonly string[], pick = (s: string) => s): string {
  const bin = findCommand(cmd);
  if (bin === undefined) return "not installed";
  const r = spawnSync(bin, [...args], { encoding: "utf8", timeout: 5_000 });
  const text = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim();
  return pick(text.split("\n")[0] ?? "") || "unknown";
}

/** Version of a Debian package, for tools that do not print one (microsocks). */
function debianVersion(pkg: string): string {
  // prints "<package>\t<version>"
  const r = spawnSync("dpkg-query", ["-W", pkg], { encoding: "utf8", timeout: 5_000 });
  const v = r.status === 0 ? r.stdout.trim().split("\t")[1] : undefined;
  return v ? `${pkg} ${v}` : "not installed";
}

function commitOf(dir: string): string {
  const head = spawnSync("git", ["-C", dir, "rev-parse", "--short", "HEAD"], {
    encoding: "utf8",
    timeout: 5_000,
  });
  if (head.status !== 0) return "unknown";
  const dirty = spawnSync("git", ["-C", dir, "status", "--porcelain", "--untracked-files=no"], {
    encoding: "utf8",
    timeout: 5_000,
  });
  return `${head.stdout.trim()}${dirty.stdout?.trim() ? "+changes" : ""}`;
}

export function machineInfo(repoRoot: string): MachineInfo {
  const list = cpus();
  return {
    cpu: list[0]?.model.trim() ?? "unknown",
    cores: list.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    kernel: `${release()} (${version()})`,
    date: new Date().toISOString(),
    loadAverageAtStart: loadavg().map((n) => Math.round(n * 100) / 100),
    commit: commitOf(repoRoot),
    tools: {
      microsocks: debianVersion("microsocks"),
      openssh: versionOf("ssh", ["-V"]),
      // vsftpd -v writes to its stdin
      vsftpd: debianVersion("vsftpd"),
      curl: versionOf("curl", ["--version"], (s) => s.split(" ").slice(0, 2).join(" ")),
      openssl: versionOf("openssl", ["version"]),
    },
  };
}
