/** The audit trail conformance cases (audit-conformance.ts) against the file trail. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AuditLog } from "../../cloud/audit/audit-log.js";
import { FileAuditLog } from "../../cloud/audit/file-audit-log.js";
import { auditTrailConformance } from "./audit-conformance.js";

const dirs = new Map<AuditLog, string>();
const made: string[] = [];

auditTrailConformance("file", {
  async fresh(relayId) {
    const dir = await mkdtemp(join(tmpdir(), "underpass-audit-conformance-"));
    made.push(dir);
    const log = new FileAuditLog({ dir, ...(relayId ? { relayId } : {}) });
    dirs.set(log, dir);
    return log;
  },
  async again(log) {
    const dir = dirs.get(log)!;
    await log.close();
    const next = new FileAuditLog({ dir });
    dirs.set(next, dir);
    return next;
  },
  async cleanup() {
    for (const dir of made.splice(0)) await rm(dir, { recursive: true, force: true });
  },
});
