/**
 * A process that writes to a file store until it is killed, for the crash test
 * (integration/file-store-crash.test.ts). Usage: node store-writer.js <dir> <round> <journalLimit>.
 *
 * Each step adds a mapping and, at the same time, deletes the one added ten steps earlier; each
 * write's id goes to stdout (`add <id>` / `del <id>`) as soon as the store acknowledged it, so
 * whatever the parent read was durable before the kill.
 */
import { FileStore } from "../../cloud/store/file-store.js";
import type { MappingRecord } from "../../cloud/store/store.js";
import { silentLogger } from "../../shared/logger.js";

const [dir, round, limit] = process.argv.slice(2);
if (!dir || !round || !limit) throw new Error("usage: store-writer.js <dir> <round> <journalLimit>");

const T = "2026-01-02T03:04:05.000Z";
/** How many steps a mapping lives before it is deleted. */
const LIFETIME = 10;

function mapping(id: string): MappingRecord {
  return {
    id,
    virtualHost: `${id.replaceAll("_", "-")}.crash.example`,
    virtualPort: { start: 21, end: 21 },
    internalHost: "10.0.0.5",
    internalPort: { start: 21, end: 21 },
    location: "default",
    protocol: "tcp",
    description: "x".repeat(64),
    createdAt: T,
    updatedAt: T,
  };
}

const store = new FileStore({ dir, logger: silentLogger(), journalLimit: Number(limit) });
await store.open();
process.stdout.write("open\n");
const idOf = (i: number): string => `r${round}_${i}`;
for (let i = 0; ; i++) {
  const writes: Promise<void>[] = [
    store.addMapping(mapping(idOf(i))).then(() => void process.stdout.write(`add ${idOf(i)}\n`)),
  ];
  if (i >= LIFETIME) {
    const old = idOf(i - LIFETIME);
    writes.push(
      store.deleteMapping(old).then((deleted) => {
        if (!deleted) throw new Error(`${old} was not there to delete`);
        process.stdout.write(`del ${old}\n`);
      }),
    );
  }
  await Promise.all(writes);
}
