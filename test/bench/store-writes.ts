/**
 * What one admin write costs the embedded file store at 10 000 mappings: bytes handed to
 * write(2) (the process's `wchar` in /proc/self/io, so the figure does not depend on the page
 * cache) and wall time per create and per delete. Usage: node dist/test/bench/store-writes.js
 * [mappings] [writes] [hosts]: the mappings spread over `hosts` virtual hosts (default 1: every
 * mapping on one host, the worst case for the overlap check). Linux only (/proc).
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileStore, STORE_FILE } from "../../cloud/store/file-store.js";
import type { MappingRecord, StoreData } from "../../cloud/store/store.js";
import { silentLogger } from "../../shared/logger.js";

const T = "2026-01-02T03:04:05.000Z";

function mappingAt(i: number, hosts: number): MappingRecord {
  const port = 1 + Math.floor(i / hosts);
  return {
    id: `mp_${i.toString(16).padStart(16, "0")}`,
    virtualHost: `host-${i % hosts}.corp.example`,
    virtualPort: { start: port, end: port },
    internalHost: "10.0.0.5",
    internalPort: { start: port, end: port },
    location: "default",
    protocol: "tcp",
    description: `mapping number ${i}`,
    createdAt: T,
    updatedAt: T,
  };
}

/** Bytes this process has passed to write(2) and friends so far. */
function writtenBytes(): number {
  const m = /^wchar: (\d+)$/m.exec(readFileSync("/proc/self/io", "utf8"));
  if (!m?.[1]) throw new Error("no wchar in /proc/self/io");
  return Number(m[1]);
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 10_000);
  const writes = Number(process.argv[3] ?? 50);
  const hosts = Number(process.argv[4] ?? 1);
  const dir = await mkdtemp(join(tmpdir(), "underpass-store-bench-"));
  try {
    const data: StoreData = {
      version: 1,
      adminTokenHash: null,
      agents: [],
      clients: [],
      mappings: Array.from({ length: count }, (_, i) => mappingAt(i, hosts)),
    };
    await writeFile(join(dir, STORE_FILE), `${JSON.stringify(data, null, 2)}\n`, { mode: 0o600 });
    const store = new FileStore({ dir, logger: silentLogger() });
    await store.open();
    const measure = async (op: (i: number) => Promise<unknown>) => {
      const ms: number[] = [];
      const bytes: number[] = [];
      for (let i = 0; i < writes; i++) {
        const b0 = writtenBytes();
        const t0 = performance.now();
        await op(i);
        ms.push(performance.now() - t0);
        bytes.push(writtenBytes() - b0);
      }
      return { ms: median(ms), bytes: median(bytes), maxBytes: Math.max(...bytes) };
    };
    const create = await measure((i) => store.addMapping(mappingAt(count + i, hosts)));
    const remove = await measure((i) => store.deleteMapping(mappingAt(count + i, hosts).id));
    await store.close();
    const line = (what: string, r: { ms: number; bytes: number; maxBytes: number }) =>
      `${what}: median ${r.ms.toFixed(2)} ms, median ${r.bytes} bytes written (max ${r.maxBytes})`;
    console.log(`file store at ${count} mappings on ${hosts} host(s), ${writes} writes each`);
    console.log(line("create", create));
    console.log(line("delete", remove));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
