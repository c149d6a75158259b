/**
 * The file audit trail: newest first, paged by cursor, filtered; rotated by size with a bounded
 * number of files; numbering goes on across a restart; a crash in the middle of a write loses
 * at most that line (a real process killed with SIGKILL while appending).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { appendFileSync, readdirSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { AuditEvent } from "../../cloud/audit/audit-log.js";
import { FileAuditLog } from "../../cloud/audit/file-audit-log.js";
import { waitFor } from "../helpers/ports.js";

describe("file audit trail", () => {
  let dir = "";
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "underpass-audit-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function all(log: FileAuditLog): Promise<AuditEvent[]> {
    const out: AuditEvent[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await log.query({ limit: 7, ...(cursor ? { cursor } : {}) });
      out.push(...page.events);
      if (page.nextCursor === null) return out;
      cursor = page.nextCursor;
    }
  }

  it("answers newest first, pages by cursor and filters", async () => {
    const log = new FileAuditLog({ dir, relayId: "rl_test" });
    for (let i = 0; i < 20; i++) {
      log.append({
        event: i % 2 === 0 ? "socks.denied" : "admin.mapping.created",
        message: `event ${i}`,
        clientId: i % 4 === 0 ? "cl_a" : "cl_b",
        client: i % 4 === 0 ? "erp" : "crm",
        mappingId: i === 7 ? "mp_x" : null,
      });
    }
    const every = await all(log);
    assert.deepEqual(
      every.map((e) => e.seq),
      Array.from({ length: 20 }, (_, i) => 20 - i),
    );
    assert.ok(every.every((e) => e.relayId === "rl_test"));
    const first = await log.query({ limit: 5 });
    assert.equal(first.events.length, 5);
    assert.equal(first.nextCursor, "16");
    const denied = await log.query({ limit: 100, event: "socks.denied" });
    assert.equal(denied.events.length, 10);
    assert.equal(denied.nextCursor, null);
    assert.equal((await log.query({ limit: 100, client: "cl_a" })).events.length, 5);
    assert.equal((await log.query({ limit: 100, client: "erp" })).events.length, 5, "by name too");
    assert.deepEqual(
      (await log.query({ limit: 100, mapping: "mp_x" })).events.map((e) => e.message),
      ["event 7"],
    );
    const t = Date.parse(every[0]!.time);
    assert.equal((await log.query({ limit: 100, since: t + 60_000 })).events.length, 0);
    assert.equal((await log.query({ limit: 100, until: t - 60_000 })).events.length, 0);
    assert.equal((await log.query({ limit: 100, since: t - 60_000 })).events.length, 20);
    await log.close();
  });

  it("rotates by size, keeps a bounded number of files and still pages across them", async () => {
    const log = new FileAuditLog({ dir, maxFileBytes: 2_000, keepFiles: 2 });
    for (let i = 0; i < 200; i++)
      log.append({ event: "socks.denied", message: `denied number ${i}`, host: "x" });
    const files = readdirSync(dir).sort();
    assert.deepEqual(files, ["audit.1.jsonl", "audit.2.jsonl", "audit.jsonl"]);
    for (const f of files) assert.ok(statSync(join(dir, f)).size <= 2_000, `${f} stays under the bound`);
    const kept = await all(log);
    assert.ok(kept.length > 20 && kept.length < 200, `${kept.length} of 200 kept`);
    assert.equal(kept[0]!.seq, 200);
    // what is kept is the newest, without a gap
    assert.deepEqual(
      kept.map((e) => e.seq),
      Array.from({ length: kept.length }, (_, i) => 200 - i),
    );
    await log.close();
  });

  it("goes on numbering after a restart and closes a torn last line", async () => {
    const a = new FileAuditLog({ dir });
    for (let i = 0; i < 3; i++) a.append({ event: "agent.connected", message: `up ${i}` });
    await a.close();
    // a crash in the middle of a write leaves half a line
    appendFileSync(join(dir, "audit.jsonl"), '{"seq":4,"time":"2026-');
    const b = new FileAuditLog({ dir });
    const e = b.append({ event: "agent.disconnected", message: "down" });
    assert.equal(e.seq, 4);
    assert.deepEqual(
      (await all(b)).map((x) => x.message),
      ["down", "up 2", "up 1", "up 0"],
    );
    await b.close();
  });

  it("loses at most the line being written when the process is killed while appending", async () => {
    const module = fileURLToPath(new URL("../../cloud/audit/file-audit-log.js", import.meta.url));
    const script = `
      const { FileAuditLog } = await import(${JSON.stringify(module)});
      const log = new FileAuditLog({ dir: ${JSON.stringify(dir)}, maxFileBytes: 1 << 20, keepFiles: 50 });
      for (let i = 0; ; i++) log.append({ event: "socks.denied", message: "x".repeat(200 + (i % 300)), n: i });
    `;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: "ignore" });
    try {
      await waitFor(
        () => {
          try {
            return statSync(join(dir, "audit.jsonl")).size > 256 * 1024 || readdirSync(dir).length > 1
              ? true
              : undefined;
          } catch {
            return undefined;
          }
        },
        { timeoutMs: 20_000, intervalMs: 20, what: "the writer to have written 256 KiB" },
      );
    } finally {
      child.kill("SIGKILL");
      await new Promise((resolve) => child.once("exit", resolve));
    }
    let torn = 0;
    const seqs: number[] = [];
    for (const f of readdirSync(dir)) {
      const lines = readFileSync(join(dir, f), "utf8").split("\n");
      for (const [i, line] of lines.entries()) {
        if (line === "") continue;
        try {
          seqs.push((JSON.parse(line) as AuditEvent).seq);
        } catch {
          assert.equal(i, lines.length - 1, `only a last line may be torn (${f}:${i})`);
          torn++;
        }
      }
    }
    assert.ok(torn <= 1, `${torn} torn lines`);
    seqs.sort((x, y) => x - y);
    assert.deepEqual(
      seqs,
      Array.from({ length: seqs.length }, (_, i) => i + 1),
      "no earlier line lost",
    );
    const log = new FileAuditLog({ dir, maxFileBytes: 1 << 20, keepFiles: 50 });
    assert.equal(log.append({ event: "relay.started", message: "again" }).seq, seqs.length + 1);
    await log.close();
  });
});
