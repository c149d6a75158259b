/**
 * The audit trail conformance cases (unit/audit-conformance.ts) against the trail in the
 * database, each case in a database of its own; "the next trail" is another relay's, open at
 * the same time. And what the database trail adds: events appended while the database is away
 * are held and written once it is back.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { AuditLog } from "../../cloud/audit/audit-log.js";
import { PostgresAuditLog } from "../../cloud/audit/postgres-audit-log.js";
import { PostgresStore } from "../../cloud/store/postgres-store.js";
import { silentLogger } from "../../shared/logger.js";
import { waitFor } from "../helpers/ports.js";
import { type PostgresCluster, startPostgres } from "../helpers/postgres.js";
import { auditTrailConformance } from "../unit/audit-conformance.js";

let cluster: PostgresCluster;
let n = 0;
const stores = new Map<AuditLog, PostgresStore>();
const urls = new Map<AuditLog, string>();

before(async () => {
  cluster = await startPostgres();
});
after(async () => {
  await cluster?.close();
});

/** The trail rides on a store's pool, as in a relay: the store migrates the database. */
async function trailAt(url: string, relayId?: string, retryMs?: number): Promise<PostgresAuditLog> {
  const store = new PostgresStore({ url, logger: silentLogger(), reconnectMaxMs: 200 });
  await store.open();
  const log = new PostgresAuditLog({
    pool: store.pool,
    logger: silentLogger(),
    ...(relayId ? { relayId } : {}),
    ...(retryMs ? { retryMs } : {}),
  });
  stores.set(log, store);
  urls.set(log, url);
  return log;
}

async function closeAll(): Promise<void> {
  for (const [log, store] of stores) {
    await log.close();
    await store.close();
  }
  stores.clear();
}

auditTrailConformance("PostgreSQL", {
  fresh: async (relayId) => trailAt(await cluster.createDatabase(`audit_${++n}`), relayId),
  // the first trail stays open beside the second, as another relay's would
  again: (log) => trailAt(urls.get(log)!),
  cleanup: closeAll,
});

describe("the audit trail in the database", () => {
  it("holds what is appended while the database is away and writes it, in order, once it is back", async () => {
    const log = await trailAt(await cluster.createDatabase(`audit_${++n}`), "rl_a", 100);
    try {
      log.append({ event: "agent.connected", message: "before" });
      await log.flush();
      await cluster.stop();
      for (let i = 0; i < 5; i++) log.append({ event: "socks.denied", message: `during ${i}` });
      await assert.rejects(log.flush());
      assert.equal(log.pending, 5);
      await cluster.start();
      await waitFor(() => log.pending === 0, { timeoutMs: 15_000, what: "the held events to be written" });
      const page = await log.query({ limit: 10 });
      assert.deepEqual(
        page.events.map((e) => e.message),
        ["during 4", "during 3", "during 2", "during 1", "during 0", "before"],
      );
    } finally {
      await closeAll();
    }
  });
});
