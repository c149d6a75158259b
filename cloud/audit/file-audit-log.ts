/**
 * The audit trail as JSON lines in the data directory: `audit.jsonl`, rotated by size into
 * `audit.1.jsonl` … `audit.<keep>.jsonl` (older higher), the oldest dropped. Each event is one
 * `write(2)` of one whole line, so a crash loses at most the line being written; a torn last
 * line is skipped when read and closed with a line end before the next append.
 */
import {
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { StoreError } from "../../shared/errors.js";
import {
  type AuditEntry,
  type AuditEvent,
  type AuditLog,
  type AuditPage,
  type AuditQuery,
  cursorSeq,
  matchesQuery,
} from "./audit-log.js";

export interface FileAuditLogOptions {
  /** The folder (created when missing). */
  readonly dir: string;
  /** Rotate once the current file reaches this many bytes (default 16 MiB). */
  readonly maxFileBytes?: number;
  /** Rotated files kept besides the current one (default 8). */
  readonly keepFiles?: number;
  /** Stamped on every event. */
  readonly relayId?: string;
}

const CURRENT = "audit.jsonl";
const rotated = (n: number): string => `audit.${n}.jsonl`;

/** Parses the lines of one file, skipping a torn or foreign line. */
function parseLines(text: string): AuditEvent[] {
  const out: AuditEvent[] = [];
  for (const line of text.split("\n")) {
    if (line.length === 0) continue;
    try {
      const e = JSON.parse(line) as AuditEvent;
      if (typeof e.seq === "number" && typeof e.event === "string" && typeof e.time === "string") out.push(e);
    } catch {
      // the line a crash tore; everything before it is whole
    }
  }
  return out;
}

export class FileAuditLog implements AuditLog {
  readonly #dir: string;
  readonly #maxBytes: number;
  readonly #keep: number;
  readonly #relayId: string | undefined;
  #fd: number;
  #size: number;
  #seq: number;

  constructor(o: FileAuditLogOptions) {
    this.#dir = o.dir;
    this.#maxBytes = o.maxFileBytes ?? 16 * 1024 * 1024;
    this.#keep = o.keepFiles ?? 8;
    this.#relayId = o.relayId;
    try {
      mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
      this.#seq = this.#lastSeq();
      this.#fd = openSync(join(this.#dir, CURRENT), "a", 0o600);
      this.#size = fstatSync(this.#fd).size;
      this.#closeTornLine();
    } catch (err) {
      throw new StoreError(`cannot open the audit trail in ${this.#dir}: ${String(err)}`, { cause: err });
    }
  }

  /** The highest sequence number on disk (the newest file that has events holds it). */
  #lastSeq(): number {
    for (const name of [CURRENT, ...Array.from({ length: this.#keep }, (_, i) => rotated(i + 1))]) {
      const path = join(this.#dir, name);
      if (!existsSync(path)) continue;
      const events = parseLines(readFileSync(path, "utf8"));
      if (events.length > 0) return Math.max(...events.map((e) => e.seq));
    }
    return 0;
  }

  /** A file that ends inside a line (a crash mid-write) gets its line end before anything else. */
  #closeTornLine(): void {
    if (this.#size === 0) return;
    const text = readFileSync(join(this.#dir, CURRENT));
    if (text[text.length - 1] !== 0x0a) {
      writeSync(this.#fd, "\n");
      this.#size += 1;
    }
  }

  append(entry: AuditEntry): AuditEvent {
    const event: AuditEvent = {
      ...entry,
      seq: ++this.#seq,
      time: entry.time ?? new Date().toISOString(),
      ...(this.#relayId === undefined ? {} : { relayId: this.#relayId }),
    };
    const line = Buffer.from(`${JSON.stringify(event)}\n`, "utf8");
    if (this.#size > 0 && this.#size + line.length > this.#maxBytes) this.#rotate();
    // one write of the whole line: O_APPEND puts it after everything written before
    writeSync(this.#fd, line);
    this.#size += line.length;
    return event;
  }

  #rotate(): void {
    closeSync(this.#fd);
    rmSync(join(this.#dir, rotated(this.#keep)), { force: true });
    for (let n = this.#keep - 1; n >= 1; n--) {
      const from = join(this.#dir, rotated(n));
      if (existsSync(from)) renameSync(from, join(this.#dir, rotated(n + 1)));
    }
    renameSync(join(this.#dir, CURRENT), join(this.#dir, rotated(1)));
    this.#fd = openSync(join(this.#dir, CURRENT), "a", 0o600);
    this.#size = 0;
  }

  async query(q: AuditQuery): Promise<AuditPage> {
    const before = cursorSeq(q.cursor);
    const events: AuditEvent[] = [];
    // newest file first, newest line first; stop once a page and one more are found
    for (const name of [CURRENT, ...Array.from({ length: this.#keep }, (_, i) => rotated(i + 1))]) {
      let text: string;
      try {
        text = await readFile(join(this.#dir, name), "utf8");
      } catch {
        continue;
      }
      const lines = parseLines(text);
      for (let i = lines.length - 1; i >= 0 && events.length <= q.limit; i--) {
        const e = lines[i]!;
        if (matchesQuery(e, q, before)) events.push(e);
      }
      if (events.length > q.limit) break;
      // older files hold only older events: none of them can be newer than `since`
      const oldest = lines[0];
      if (q.since !== undefined && oldest !== undefined && Date.parse(oldest.time) < q.since) break;
    }
    const page = events.slice(0, q.limit);
    const more = events.length > q.limit;
    return { events: page, nextCursor: more ? String(page[page.length - 1]!.seq) : null };
  }

  /** Closes the file; a second close does nothing. */
  async close(): Promise<void> {
    if (this.#fd < 0) return;
    closeSync(this.#fd);
    this.#fd = -1;
  }
}
