/**
 * A file store killed with SIGKILL at random moments, round after round, over the same data
 * directory: every write the writer acknowledged is there after each kill, and the store and its
 * snapshot load. The writer (helpers/store-writer.ts) compacts often, so kills land in appends
 * and in compactions alike.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { FileStore, JOURNAL_FILE, STORE_FILE } from "../../cloud/store/file-store.js";
import { readJournal } from "../../cloud/store/journal.js";
import { silentLogger } from "../../shared/logger.js";
import { seededRandom } from "../helpers/seeded-random.js";
import { mappingRecord } from "../unit/store-conformance.js";

const WRITER = fileURLToPath(new URL("../helpers/store-writer.js", import.meta.url));
const FILLER = fileURLToPath(new URL("../helpers/store-filler.js", import.meta.url));
/** The filler's file size limit, in KiB: a few journal records. */
const LIMIT_KIB = 4;
const ROUNDS = 8;
/** Small, so that the journal is compacted every few dozen writes. */
const JOURNAL_LIMIT = 4096;
/** Generous: the machine may be busy with other test suites. */
const ROUND_TIMEOUT_MS = 60_000;

interface Round {
  /** Every line the writer printed before it died. */
  readonly lines: readonly string[];
  readonly signal: NodeJS.Signals | null;
}

/** Runs the writer until it has acknowledged `acks` writes, kills it with SIGKILL, and reads what it printed. */
function runAndKill(dir: string, round: number, acks: number, children: Set<ChildProcess>): Promise<Round> {
  const child = spawn(process.execPath, [WRITER, dir, String(round), String(JOURNAL_LIMIT)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  return new Promise<Round>((resolve, reject) => {
    let out = "";
    let err = "";
    let seen = 0;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(
          `round ${round}: ${seen} of ${acks} acknowledgements in ${ROUND_TIMEOUT_MS} ms; stderr: ${err}`,
        ),
      );
    }, ROUND_TIMEOUT_MS);
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      out += chunk;
      seen = out.split("\n").length - 2; // less the "open" line and the unfinished one
      if (seen >= acks && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      err += chunk;
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      if (signal !== "SIGKILL") {
        reject(new Error(`round ${round}: the writer ended by itself (${code}, ${signal}): ${err}`));
        return;
      }
      // A line without its newline was cut by the kill mid-print: it never counted.
      const lines = out.split("\n").slice(0, -1);
      resolve({ lines, signal });
    });
  });
}

describe("file store under kill -9", () => {
  const children = new Set<ChildProcess>();
  const dirs: string[] = [];
  const tempDir = async (prefix: string): Promise<string> => {
    const made = await mkdtemp(join(tmpdir(), prefix));
    dirs.push(made);
    return made;
  };

  after(async () => {
    for (const c of children) c.kill("SIGKILL");
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it("keeps every acknowledged write through kills at random moments", async () => {
    const dir = await tempDir("underpass-crash-");
    const seed = Date.now() >>> 0 || 1;
    const random = seededRandom(seed);
    /** Mappings that must be there (acknowledged adds) and must not (acknowledged deletes). */
    const present = new Set<string>();
    const gone = new Set<string>();
    const sequences: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const acks = 1 + (random() % 120);
      const { lines } = await runAndKill(dir, round, acks, children);
      assert.equal(lines[0], "open", `seed ${seed}, round ${round}: the writer did not open the store`);
      for (const line of lines.slice(1)) {
        const [op, id] = line.split(" ");
        assert.ok(id, `seed ${seed}: line ${JSON.stringify(line)}`);
        if (op === "add") present.add(id);
        else if (op === "del") {
          present.delete(id);
          gone.add(id);
        } else assert.fail(`seed ${seed}: line ${JSON.stringify(line)}`);
      }

      // The snapshot alone is whole JSON whatever the moment of the kill.
      const snapshot = JSON.parse(await readFile(join(dir, STORE_FILE), "utf8"));
      sequences.push(snapshot.sequence);
      const store = new FileStore({ dir, logger: silentLogger() });
      await store.open();
      try {
        const held = new Set((await store.listMappings()).map((m) => m.id));
        const where = `seed ${seed}, round ${round}`;
        for (const id of gone) assert.ok(!held.has(id), `${where}: deleted ${id} is back`);
        // The kill may land in the one step in flight: its add (the round's newest mapping) may
        // be there unacknowledged, its delete (the round's oldest) may be done unacknowledged.
        const ofRound = (id: string): number | null =>
          id.startsWith(`r${round}_`) ? Number(id.slice(`r${round}_`.length)) : null;
        const missing = [...present].filter((id) => !held.has(id));
        assert.ok(missing.length <= 1, `${where}: acknowledged ${missing.join(", ")} lost`);
        const live = [...present].map(ofRound).filter((k): k is number => k !== null);
        for (const id of missing) {
          assert.equal(ofRound(id), Math.min(...live), `${where}: acknowledged ${id} is lost`);
          present.delete(id);
          gone.add(id);
        }
        const extra = [...held].filter((id) => !present.has(id));
        assert.ok(extra.length <= 1, `${where}: never acknowledged: ${extra.join(", ")}`);
        for (const id of extra) {
          assert.ok((ofRound(id) ?? -1) > Math.max(-1, ...live), `${where}: ${id} was never acknowledged`);
          present.add(id);
        }
      } finally {
        await store.close();
      }
    }
    assert.ok(
      sequences.some((s, i) => i > 0 && s !== sequences[i - 1]),
      `seed ${seed}: no compaction happened in ${ROUNDS} rounds (snapshot sequences ${sequences.join(", ")})`,
    );
  });

  it("a write the file system refuses half-way leaves no torn record behind", async () => {
    const dir = await tempDir("underpass-efbig-");
    const first = new FileStore({ dir, logger: silentLogger() });
    await first.open(); // the snapshot, written here, without a limit
    await first.close();
    // RLIMIT_FSIZE (in KiB blocks for bash): an append that crosses it writes part of its record,
    // then fails with EFBIG (Node ignores SIGXFSZ) — a torn record inside a live process.
    const child = spawn(
      "bash",
      ["-c", `ulimit -f ${LIMIT_KIB} && exec "$0" "$@"`, process.execPath, FILLER, dir, "3"],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    children.add(child);
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => {
      out += c;
    });
    child.stderr.setEncoding("utf8").on("data", (c: string) => {
      err += c;
    });
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`the filler did not finish: ${out} ${err}`)),
        ROUND_TIMEOUT_MS,
      );
      child.on("error", reject);
      child.on("close", (c) => {
        clearTimeout(timer);
        children.delete(child);
        resolve(c);
      });
    });
    assert.equal(code, 0, err);
    const lines = out.trim().split("\n");
    const added = lines.filter((l) => l.startsWith("add ")).map((l) => l.split(" ")[1]);
    const refused = lines.filter((l) => l.startsWith("fail "));
    assert.ok(added.length > 0, out);
    assert.equal(refused.length, 3, out);
    for (const l of refused) assert.match(l, /EFBIG/);

    const journal = await readFile(join(dir, JOURNAL_FILE));
    const read = readJournal(journal);
    assert.ok(read.kind === "ok");
    assert.equal(read.tornBytes, 0, "the refused append was cut off again");
    assert.equal(read.records.length, added.length);
    assert.ok(journal.length <= LIMIT_KIB * 1024);

    const store = new FileStore({ dir, logger: silentLogger() });
    await store.open();
    try {
      assert.deepEqual(
        (await store.listMappings()).map((m) => m.id),
        added,
      );
      await store.addMapping(mappingRecord("mp_after", [60000, 60000])); // the disk has room again
    } finally {
      await store.close();
    }
    const again = new FileStore({ dir, logger: silentLogger() });
    await again.open();
    assert.deepEqual(
      (await again.listMappings()).map((m) => m.id),
      [...added, "mp_after"],
    );
    await again.close();
  });
});
