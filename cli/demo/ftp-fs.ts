/**
 * The demo FTP server's view of the disk: virtual paths ("/", "/dir/file") confined to a root
 * directory, and the listing formats (LIST as `ls -l`, NLST, MLSD/MLST facts of RFC 3659 §7).
 *
 * Confinement: a path whose `..` climbs above "/" is refused outright; every path is then
 * resolved with realpath and refused unless it stays inside the root, so a symlink cannot lead
 * out. Files are opened by their resolved path with O_NOFOLLOW, so the last component cannot be
 * swapped for a symlink between the check and the open.
 */
import { constants, type Stats } from "node:fs";
import {
  type FileHandle,
  lstat,
  mkdir,
  open,
  readdir,
  realpath,
  rmdir,
  stat,
  unlink,
} from "node:fs/promises";
import { join, posix, sep } from "node:path";

/** An FTP reply to send instead of the one the command would have given (RFC 959 §4.2). */
export class FtpReplyError extends Error {
  constructor(
    readonly reply: number,
    message: string,
  ) {
    super(message);
  }
}

/** Fixed texts for file-system failures: Node's messages carry real paths, which stay private. */
const FS_ERRORS: Record<string, string> = {
  ENOENT: "No such file or directory",
  EACCES: "Permission denied",
  EPERM: "Permission denied",
  EEXIST: "File exists",
  ENOTEMPTY: "Directory not empty",
  ENOTDIR: "Not a directory",
  EISDIR: "Is a directory",
  ELOOP: "Too many levels of symbolic links",
  ENAMETOOLONG: "File name too long",
  ENOSPC: "No space left on device",
};

/** Turn a file-system error into a 550 with a fixed text; anything else is rethrown. */
export function fsReplyError(err: unknown): FtpReplyError {
  if (err instanceof FtpReplyError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === "string")
    return new FtpReplyError(550, FS_ERRORS[code] ?? "Requested action not taken");
  throw err;
}

/** O_NOFOLLOW where the platform has it (not on Windows). */
const NOFOLLOW = constants.O_NOFOLLOW ?? 0;

export interface Entry {
  readonly name: string;
  readonly stats: Stats;
}

export class FtpFileSystem {
  /** `root` must already be a real path (no symlinks), as `startDemoFtpServer` makes it. */
  constructor(readonly root: string) {}

  /** Absolute virtual path for `arg` seen from `cwd`; 550 when it climbs above "/". */
  resolve(cwd: string, arg: string): string {
    if (arg.includes("\0")) throw new FtpReplyError(501, "Invalid path");
    const segments = arg.startsWith("/") ? [] : cwd.split("/").filter(Boolean);
    for (const part of arg.split("/")) {
      if (part === "" || part === ".") continue;
      if (part !== "..") segments.push(part);
      else if (segments.pop() === undefined) throw new FtpReplyError(550, "Path is outside the root");
    }
    return `/${segments.join("/")}`;
  }

  /** Real path and stats of an existing entry inside the root. */
  async existing(virtual: string): Promise<{ real: string; stats: Stats }> {
    try {
      const real = await realpath(join(this.root, virtual));
      if (!this.inside(real)) throw new FtpReplyError(550, "Path is outside the root");
      return { real, stats: await stat(real) };
    } catch (err) {
      throw fsReplyError(err);
    }
  }

  async directory(virtual: string): Promise<string> {
    const { real, stats } = await this.existing(virtual);
    if (!stats.isDirectory()) throw new FtpReplyError(550, "Not a directory");
    return real;
  }

  async file(virtual: string): Promise<{ real: string; stats: Stats }> {
    const found = await this.existing(virtual);
    if (!found.stats.isFile()) throw new FtpReplyError(550, "Not a plain file");
    return found;
  }

  /** Real path where `virtual` may be created or replaced: its directory exists inside the root. */
  async creatable(virtual: string): Promise<string> {
    if (virtual === "/") throw new FtpReplyError(550, "Invalid path");
    const parent = await this.directory(posix.dirname(virtual));
    const target = join(parent, posix.basename(virtual));
    try {
      await lstat(target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return target;
      throw fsReplyError(err);
    }
    return (await this.existing(virtual)).real; // exists: a symlink must stay inside the root
  }

  async openForRead(virtual: string): Promise<{ handle: FileHandle; size: number }> {
    const { real } = await this.file(virtual);
    try {
      const handle = await open(real, constants.O_RDONLY | NOFOLLOW);
      return { handle, size: (await handle.stat()).size };
    } catch (err) {
      throw fsReplyError(err);
    }
  }

  async openForWrite(virtual: string): Promise<FileHandle> {
    const real = await this.creatable(virtual);
    try {
      return await open(real, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | NOFOLLOW, 0o644);
    } catch (err) {
      throw fsReplyError(err);
    }
  }

  async makeDirectory(virtual: string): Promise<void> {
    const real = await this.creatable(virtual);
    await mkdir(real).catch((err: unknown) => {
      throw fsReplyError(err);
    });
  }

  async removeDirectory(virtual: string): Promise<void> {
    if (virtual === "/") throw new FtpReplyError(550, "Cannot remove the root");
    const target = join(await this.directory(posix.dirname(virtual)), posix.basename(virtual));
    await rmdir(target).catch((err: unknown) => {
      throw fsReplyError(err);
    });
  }

  /** Delete a file; a symlink is removed itself, never what it points to. */
  async deleteFile(virtual: string): Promise<void> {
    if (virtual === "/") throw new FtpReplyError(550, "Is a directory");
    const target = join(await this.directory(posix.dirname(virtual)), posix.basename(virtual));
    try {
      if ((await lstat(target)).isDirectory()) throw new FtpReplyError(550, "Is a directory");
      await unlink(target);
    } catch (err) {
      throw fsReplyError(err);
    }
  }

  /** The entries of a directory, or the file itself; symlinks leading outside the root are left out. */
  async list(virtual: string): Promise<Entry[]> {
    const { real, stats } = await this.existing(virtual);
    if (!stats.isDirectory()) return [{ name: posix.basename(virtual), stats }];
    let names: string[];
    try {
      names = await readdir(real);
    } catch (err) {
      throw fsReplyError(err);
    }
    const entries: Entry[] = [];
    for (const name of names.sort()) {
      if (/[\r\n]/.test(name)) continue; // cannot be sent on a line-based listing
      try {
        const target = await realpath(join(real, name));
        if (this.inside(target)) entries.push({ name, stats: await stat(target) });
      } catch {
        // broken symlink or vanished entry: not listed
      }
    }
    return entries;
  }

  private inside(real: string): boolean {
    return real === this.root || real.startsWith(this.root.endsWith(sep) ? this.root : this.root + sep);
  }
}

// ---- listing formats ---------------------------------------------------------------------

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
/** `ls -l` shows the time of day for files modified in the last six months, else the year. */
const SIX_MONTHS_MS = 182 * 24 * 3600 * 1000;

function modeString(stats: Stats): string {
  const rwx = (bits: number) => `${bits & 4 ? "r" : "-"}${bits & 2 ? "w" : "-"}${bits & 1 ? "x" : "-"}`;
  const mode = stats.mode;
  return `${stats.isDirectory() ? "d" : "-"}${rwx(mode >> 6)}${rwx(mode >> 3)}${rwx(mode)}`;
}

const pad2 = (n: number) => String(n).padStart(2, "0");

/** One `ls -l` line (UTC), the de facto LIST format that clients parse. */
export function formatListLine(entry: Entry, now: number): string {
  const { stats } = entry;
  const t = stats.mtime;
  const recent = Math.abs(now - t.getTime()) < SIX_MONTHS_MS;
  const when = recent ? `${pad2(t.getUTCHours())}:${pad2(t.getUTCMinutes())}` : ` ${t.getUTCFullYear()}`;
  const date = `${MONTHS[t.getUTCMonth()]} ${String(t.getUTCDate()).padStart(2)} ${when}`;
  return `${modeString(stats)} 1 ftp ftp ${String(stats.size).padStart(12)} ${date} ${entry.name}`;
}

/** RFC 3659 §2.3 time-val: YYYYMMDDHHMMSS in UTC. */
export function formatTimeVal(date: Date): string {
  return (
    String(date.getUTCFullYear()).padStart(4, "0") +
    pad2(date.getUTCMonth() + 1) +
    pad2(date.getUTCDate()) +
    pad2(date.getUTCHours()) +
    pad2(date.getUTCMinutes()) +
    pad2(date.getUTCSeconds())
  );
}

/** The MLSx facts this server knows (RFC 3659 §7.5), in FEAT order. */
export const MLST_FACTS = ["type", "size", "modify", "perm"] as const;

/** RFC 3659 §7.2 fact line: `type=file;size=3;modify=...;perm=r; name` with the selected facts. */
export function formatMlsxLine(entry: Entry, facts: ReadonlySet<string>, writable: boolean): string {
  const { stats } = entry;
  const dir = stats.isDirectory();
  const values: Record<(typeof MLST_FACTS)[number], string> = {
    type: dir ? "dir" : "file",
    size: String(stats.size),
    modify: formatTimeVal(stats.mtime),
    perm: dir ? (writable ? "elcmp" : "el") : writable ? "rwdf" : "r",
  };
  const selected = MLST_FACTS.filter((f) => facts.has(f) && !(dir && f === "size"));
  return `${selected.map((f) => `${f}=${values[f]};`).join("")} ${entry.name}`;
}
