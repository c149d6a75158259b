/**
 * The file store's journal, as bytes: one record per change, appended beside the snapshot and
 * replayed over it on load. Pure: bytes in, records or a verdict out; the file I/O is in
 * journal-file.ts.
 *
 * A record is one line, `<crc32 hex, 8 chars> <json>\n`, the CRC-32 (ISO-HDLC, as zlib) taken
 * over the JSON's UTF-8 bytes. JSON never holds a raw newline, so the newline ends the record.
 * The JSON is `{"seq": n, "changes": [...]}`: `seq` numbers the store's changes 1, 2, 3… and
 * the snapshot names the last one it holds, so replay skips what the snapshot already has.
 *
 * A crash in the middle of an append leaves a torn last record: no newline, or bytes that fail
 * the checksum. Such a write was never acknowledged (the append is fsynced before it is), so it
 * is dropped. A bad record with a good one after it is not a torn append but damage, and
 * reading refuses it rather than silently skip an acknowledged change.
 */
import { crc32 } from "node:zlib";
import { z } from "zod";
import { agentRecord, clientRecord, configSchema, hash, mappingRecord } from "./config-check.js";
import type { AgentRecord, ClientRecord, ConfigData, MappingRecord, StoreData } from "./store.js";

/** The lists of the store, named as in its data. */
export type Entity = "agents" | "clients" | "mappings";

interface RecordOf {
  agents: AgentRecord;
  clients: ClientRecord;
  mappings: MappingRecord;
}

type PutOf<E extends Entity> = { readonly op: "put"; readonly entity: E; readonly record: RecordOf[E] };

/** One change, as its effect: a record put (added at the end, or replaced where it is), a record deleted, … */
export type JournalChange =
  | PutOf<"agents">
  | PutOf<"clients">
  | PutOf<"mappings">
  | { readonly op: "delete"; readonly entity: Entity; readonly id: string }
  | { readonly op: "admin"; readonly adminTokenHash: string }
  | { readonly op: "import"; readonly config: ConfigData };

export interface JournalRecord {
  /** This change's number: the previous record's plus one. */
  readonly seq: number;
  /** Applied together, as one write. */
  readonly changes: readonly JournalChange[];
}

const changeSchema = z.union([
  z.object({ op: z.literal("put"), entity: z.literal("agents"), record: agentRecord }),
  z.object({ op: z.literal("put"), entity: z.literal("clients"), record: clientRecord }),
  z.object({ op: z.literal("put"), entity: z.literal("mappings"), record: mappingRecord }),
  z.object({ op: z.literal("delete"), entity: z.enum(["agents", "clients", "mappings"]), id: z.string() }),
  z.object({ op: z.literal("admin"), adminTokenHash: hash }),
  z.object({ op: z.literal("import"), config: configSchema }),
]);

const recordSchema = z.object({
  seq: z.number().int().min(1),
  changes: z.array(changeSchema),
});

/** A newline ends every record. */
const LF = 0x0a;
/** `<8 hex> ` before the JSON. */
const PREFIX_BYTES = 9;

function crcHex(bytes: Uint8Array): string {
  return crc32(bytes).toString(16).padStart(8, "0");
}

/** The bytes of one record, newline included. */
export function encodeRecord(record: JournalRecord): Buffer {
  const json = Buffer.from(JSON.stringify(record), "utf8");
  return Buffer.concat([Buffer.from(`${crcHex(json)} `, "ascii"), json, Buffer.from([LF])]);
}

/** One line without its newline: the record, or why it is not one. */
function decodeLine(line: Buffer): JournalRecord | string {
  if (line.length <= PREFIX_BYTES || line[PREFIX_BYTES - 1] !== 0x20) return "no checksum";
  const sum = line.subarray(0, PREFIX_BYTES - 1).toString("latin1");
  const json = line.subarray(PREFIX_BYTES);
  if (crcHex(json) !== sum) return "checksum mismatch";
  let value: unknown;
  try {
    value = JSON.parse(json.toString("utf8"));
  } catch {
    return "not JSON";
  }
  const parsed = recordSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return `not a journal record (${issue?.path.join(".")}: ${issue?.message})`;
  }
  return parsed.data as JournalRecord;
}

export type JournalRead =
  | {
      readonly kind: "ok";
      readonly records: readonly JournalRecord[];
      /** Bytes of whole, valid records from the start. */
      readonly validBytes: number;
      /** What follows them: a torn last record, dropped (0 when the journal ends cleanly). */
      readonly tornBytes: number;
      /** Why the torn tail is not a record. */
      readonly tornReason: string | null;
    }
  | {
      readonly kind: "corrupt";
      /** Byte offset of the bad record, which has a good one after it. */
      readonly offset: number;
      readonly reason: string;
    };

/** Read a whole journal. */
export function readJournal(bytes: Buffer): JournalRead {
  const records: JournalRecord[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const end = bytes.indexOf(LF, offset);
    if (end === -1) return torn(records, offset, bytes.length, "no end of line");
    const record = decodeLine(bytes.subarray(offset, end));
    if (typeof record === "string") {
      // A torn append leaves garbage only at the end: a good record after a bad one is damage.
      for (let at = end + 1; at < bytes.length; ) {
        const next = bytes.indexOf(LF, at);
        if (next === -1) break;
        if (typeof decodeLine(bytes.subarray(at, next)) !== "string") {
          return { kind: "corrupt", offset, reason: record };
        }
        at = next + 1;
      }
      return torn(records, offset, bytes.length, record);
    }
    records.push(record);
    offset = end + 1;
  }
  return { kind: "ok", records, validBytes: offset, tornBytes: 0, tornReason: null };
}

function torn(records: JournalRecord[], offset: number, length: number, reason: string): JournalRead {
  return { kind: "ok", records, validBytes: offset, tornBytes: length - offset, tornReason: reason };
}

/**
 * The records a snapshot that holds changes up to `snapshotSeq` lacks, in order; a string when
 * they do not follow on from it without a gap (a change would be lost).
 */
export function recordsAfter(
  snapshotSeq: number,
  records: readonly JournalRecord[],
): readonly JournalRecord[] | string {
  const pending = records.filter((r) => r.seq > snapshotSeq);
  let expected = snapshotSeq + 1;
  for (const r of pending) {
    if (r.seq !== expected) return `record ${r.seq} where ${expected} was due`;
    expected++;
  }
  return pending;
}

type Keyed = { readonly id: string };

/** The data with `changes` applied in order; `data` itself is left as it is. */
export function applyChanges(data: StoreData, changes: readonly JournalChange[]): StoreData {
  // Maps keep insertion order and `set` on a known key keeps its place: a put adds at the end
  // or replaces where the record was, as the lists have always behaved.
  const lists: { [E in Entity]?: Map<string, RecordOf[E]> } = {};
  const list = <E extends Entity>(e: E): Map<string, RecordOf[E]> => {
    let m = lists[e] as Map<string, RecordOf[E]> | undefined;
    if (m === undefined) {
      m = new Map((data[e] as readonly RecordOf[E][]).map((r: Keyed) => [r.id, r as RecordOf[E]]));
      (lists as Record<E, Map<string, RecordOf[E]>>)[e] = m;
    }
    return m;
  };
  let adminTokenHash = data.adminTokenHash;
  for (const c of changes) {
    switch (c.op) {
      case "put":
        (list(c.entity) as Map<string, Keyed>).set(c.record.id, c.record);
        break;
      case "delete":
        list(c.entity).delete(c.id);
        break;
      case "admin":
        adminTokenHash = c.adminTokenHash;
        break;
      case "import":
        lists.agents = new Map(c.config.agents.map((r) => [r.id, r]));
        lists.clients = new Map(c.config.clients.map((r) => [r.id, r]));
        lists.mappings = new Map(c.config.mappings.map((r) => [r.id, r]));
        break;
      default: {
        const never: never = c;
        throw new Error(`unknown journal change ${JSON.stringify(never)}`);
      }
    }
  }
  return {
    version: data.version,
    adminTokenHash,
    agents: lists.agents ? [...lists.agents.values()] : data.agents,
    clients: lists.clients ? [...lists.clients.values()] : data.clients,
    mappings: lists.mappings ? [...lists.mappings.values()] : data.mappings,
  };
}
