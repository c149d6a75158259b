/**
 * Every change made through the admin API goes to the audit trail: which credential made it,
 * from where, what changed, and the record before and after — never a secret, not even its hash.
 */
import type { FastifyRequest } from "fastify";
import type { AdminDeps } from "./deps.js";
import { LIVE_EVENT } from "./live-feed.js";

/** What an audit entry may show of a record: anything but secrets and their hashes. */
export function withoutSecrets(record: object | undefined | null): Record<string, unknown> | null {
  if (record === undefined || record === null) return null;
  const {
    tokenHash: _t,
    passwordHash: _p,
    token: _tk,
    password: _pw,
    ...shown
  } = record as Record<string, unknown>;
  return shown;
}

/** Who made an admin change: the bearer token, or a console session (set by the auth hook). */
export function actorOf(req: FastifyRequest): string {
  return (req as FastifyRequest & { adminActor?: string }).adminActor ?? "admin-token";
}

export interface Change {
  /** e.g. `admin.mapping.created`. */
  readonly event: string;
  readonly message: string;
  readonly before?: object | null;
  readonly after?: object | null;
  readonly agentId?: string;
  readonly clientId?: string;
  readonly mappingId?: string;
  readonly [detail: string]: unknown;
}

/** Appends the change to the audit trail and tells the live event stream (`config.changed`). */
export function auditChange(
  deps: Pick<AdminDeps, "audit" | "events">,
  req: FastifyRequest,
  change: Change,
): void {
  const { before, after, ...rest } = change;
  const { event, message, agentId, clientId, mappingId } = change;
  deps.events.publish({
    type: LIVE_EVENT.CONFIG_CHANGED,
    data: { event, message, agentId, clientId, mappingId, actor: actorOf(req) },
  });
  deps.audit.append({
    ...rest,
    actor: actorOf(req),
    remote: req.ip,
    ...(before === undefined ? {} : { before: withoutSecrets(before) }),
    ...(after === undefined ? {} : { after: withoutSecrets(after) }),
  });
}
