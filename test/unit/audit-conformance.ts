/**
 * What every audit trail must answer, whatever holds it: the same cases run against the file
 * trail (audit-conformance-file.test.ts) and the database trail
 * (integration/audit-conformance-postgres.test.ts).
 */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import type { AuditEvent, AuditLog, AuditQuery } from "../../cloud/audit/audit-log.js";

export interface AuditTrailUnderTest {
  /** A fresh, empty trail stamping `relayId`. */
  fresh(relayId?: string): Promise<AuditLog>;
  /**
   * Another trail over the data of `trail` (a restart, or another relay); it takes `trail`
   * over and closes it when that must come first.
   */
  again(trail: AuditLog): Promise<AuditLog>;
  cleanup?(): Promise<void>;
}

async function all(log: AuditLog, q: Omit<AuditQuery, "limit"> = {}): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await log.query({ ...q, limit: 7, ...(cursor ? { cursor } : {}) });
    out.push(...page.events);
    if (page.nextCursor === null) return out;
    cursor = page.nextCursor;
  }
}

export function auditTrailConformance(name: string, sut: AuditTrailUnderTest): void {
  describe(`audit trail conformance: ${name}`, () => {
    const opened: AuditLog[] = [];
    afterEach(async () => {
      for (const t of opened.splice(0)) await t.close();
      await sut.cleanup?.();
    });
    const fresh = async (relayId?: string) => {
      const t = await sut.fresh(relayId);
      opened.push(t);
      return t;
    };

    it("answers newest first, pages by cursor and filters as matchesQuery says", async () => {
      const log = await fresh("rl_test");
      const t0 = Date.parse("2026-04-01T00:00:00.000Z");
      for (let i = 0; i < 20; i++) {
        log.append({
          event: i % 2 === 0 ? "socks.denied" : "admin.mapping.created",
          message: `event ${i}`,
          time: new Date(t0 + i * 1000).toISOString(),
          clientId: i % 4 === 0 ? "cl_a" : "cl_b",
          client: i % 4 === 0 ? "erp" : "crm",
          ...(i === 3 ? { agentId: "ag_x", agent: "plant agent" } : {}),
          mappingId: i === 7 ? "mp_x" : null,
          nested: { i },
        });
      }
      const every = await all(log);
      assert.deepEqual(
        every.map((e) => e.message),
        Array.from({ length: 20 }, (_, i) => `event ${19 - i}`),
      );
      const seqs = every.map((e) => e.seq);
      assert.deepEqual(
        [...seqs].sort((a, b) => b - a),
        seqs,
        "seq decreases down the pages",
      );
      assert.ok(every.every((e) => e.relayId === "rl_test"));
      assert.deepEqual(every[0]?.["nested"], { i: 19 }, "details come back as appended");
      assert.equal(every[0]?.time, new Date(t0 + 19_000).toISOString());

      const first = await log.query({ limit: 5 });
      assert.equal(first.events.length, 5);
      assert.equal(first.nextCursor, String(first.events[4]!.seq));
      const second = await log.query({ limit: 5, cursor: first.nextCursor! });
      assert.equal(second.events[0]?.message, "event 14");

      const denied = await log.query({ limit: 100, event: "socks.denied" });
      assert.equal(denied.events.length, 10);
      assert.equal(denied.nextCursor, null);
      assert.equal((await all(log, { event: "socks.denied" })).length, 10);
      assert.equal((await log.query({ limit: 100, client: "cl_a" })).events.length, 5);
      assert.equal((await log.query({ limit: 100, client: "erp" })).events.length, 5, "by name too");
      assert.deepEqual(
        (await log.query({ limit: 100, agent: "plant agent" })).events.map((e) => e.message),
        ["event 3"],
      );
      assert.deepEqual(
        (await log.query({ limit: 100, agent: "ag_x", event: "admin.mapping.created" })).events.map(
          (e) => e.message,
        ),
        ["event 3"],
      );
      assert.deepEqual(
        (await log.query({ limit: 100, mapping: "mp_x" })).events.map((e) => e.message),
        ["event 7"],
      );
      // since inclusive, until exclusive
      const window = await log.query({ limit: 100, since: t0 + 5_000, until: t0 + 8_000 });
      assert.deepEqual(
        window.events.map((e) => e.message),
        ["event 7", "event 6", "event 5"],
      );
      assert.equal((await log.query({ limit: 100, since: t0 + 60_000 })).events.length, 0);
      assert.equal((await log.query({ limit: 100, until: t0 })).events.length, 0);
      assert.equal((await log.query({ limit: 100, cursor: "not-a-cursor" })).events.length, 20);
    });

    it("numbering goes on in the next trail over the same data", async () => {
      const a = await fresh();
      for (let i = 0; i < 3; i++) a.append({ event: "agent.connected", message: `up ${i}` });
      const newest = (await a.query({ limit: 1 })).events[0]!.seq;
      opened.splice(opened.indexOf(a), 1);
      const b = await sut.again(a);
      opened.push(b);
      b.append({ event: "agent.disconnected", message: "down" });
      const page = await b.query({ limit: 10 });
      assert.equal(page.events[0]?.message, "down");
      assert.ok(page.events[0]!.seq > newest);
      assert.equal(page.events.length, 4);
    });
  });
}
