/**
 * The audit log: a line with `"audit": true` and an `event` field for every grant and denial,
 * written from the relay's events. The lines and their fields are what operators and tests
 * read (README: socks.connect, socks.ftp-data, socks.bind, socks.denied, socks.bind-denied,
 * socks.auth-failed, admin.auth-failed, ftp.bounce-refused, ftp.active-data).
 *
 * What an operator must be able to look back on — every refusal, agents coming and going — also
 * goes to the audit trail (`GET /v1/audit`); grants stay in the log lines only, so the trail
 * does not grow with every connection.
 *
 * What a peer that has not authenticated can repeat at will (a wrong password, an unknown agent
 * or admin token, a bound that bites) is rate-limited per source: the first entry is written, then one
 * summary entry per period (`summary: true`, `suppressed`: how many were left out). Thousands of
 * wrong passwords make a few lines, not thousands.
 */
import type { Logger } from "../../shared/logger.js";
import type { RelayEvents } from "../events.js";
import { RateLimited } from "../limits/rate-limited.js";
import { sourceKey } from "../limits/source-key.js";
import type { AuditLog } from "./audit-log.js";

export interface AuditOptions {
  /** Period of the summaries of rate-limited entries, in ms (default 60 s). */
  readonly summaryPeriodMs?: number;
}

/** Write audit lines (and trail entries) until the returned function is called. */
export function writeAuditLog(
  events: RelayEvents,
  log: Logger,
  trail: AuditLog,
  options: AuditOptions = {},
): () => void {
  /** A refusal: a warning line and a trail entry with the same fields. */
  const refusal = (fields: { event: string } & Record<string, unknown>, message: string): void => {
    log.warn(fields, message);
    trail.append({ ...fields, message });
  };
  /** Rate-limited refusals, keyed `event source`; the summary names both. */
  const limited = new RateLimited<string>(
    { periodMs: options.summaryPeriodMs ?? 60_000 },
    (key, suppressed, periodMs) => {
      const space = key.indexOf(" ");
      const event = space < 0 ? "audit" : key.slice(0, space);
      const source = space < 0 ? "*" : key.slice(space + 1);
      refusal(
        { event, summary: true, suppressed, periodMs, source },
        `${suppressed} more ${event} from ${source} in ${periodMs} ms (not written one by one)`,
      );
    },
  );
  const limitedRefusal = (
    source: string,
    fields: { event: string } & Record<string, unknown>,
    message: string,
  ): void => {
    limited.note(`${fields.event} ${source}`, () => refusal(fields, message));
  };
  const audit = {
    info: (fields: object, message: string) => log.info(fields, message),
    warn: (fields: { event: string } & Record<string, unknown>, message: string) => refusal(fields, message),
  };
  const stops = [
    events.tunnelConnected.subscribe((m) =>
      trail.append({
        event: "agent.connected",
        message: `agent ${m.agentName} connected from ${m.remote}`,
        agentId: m.agentId,
        agent: m.agentName,
        location: m.location,
        remote: m.remote,
        tunnelId: m.tunnelId,
        version: m.agentVersion,
        hostName: m.hostName,
        instanceId: m.instanceId,
      }),
    ),
    // a token held in two places; rate-limited per agent, as a refused one retries
    events.tunnelSecondInstance.subscribe((m) =>
      limitedRefusal(
        m.agentId,
        {
          event: "agent.second-instance",
          agentId: m.agentId,
          agent: m.agentName,
          location: m.location,
          remote: m.tunnel.remote,
          hostName: m.tunnel.hostName,
          instanceId: m.tunnel.instanceId,
          tunnelId: m.tunnel.tunnelId,
          connected: m.connected,
          refused: m.refused,
        },
        `agent ${m.agentName}: a second instance${m.tunnel.hostName === null ? "" : ` on ${m.tunnel.hostName}`} (${m.tunnel.remote}) while ${m.connected.length} other${m.connected.length === 1 ? " is" : "s are"} connected${m.refused ? "; refused (single-instance)" : ""}`,
      ),
    ),
    events.tunnelDisconnected.subscribe((m) =>
      trail.append({
        event: "agent.disconnected",
        message: `agent tunnel closed: ${m.reason}`,
        agentId: m.agentId,
        location: m.location,
        tunnelId: m.tunnelId,
        reason: m.reason,
        goaway: m.goaway,
        byPeer: m.byPeer,
        durationMs: m.durationMs,
      }),
    ),
    events.tunnelRejected.subscribe((m) =>
      limitedRefusal(
        sourceKey(m.remote.slice(0, m.remote.lastIndexOf(":"))),
        { event: "agent.rejected", remote: m.remote, code: m.code, reason: m.reason, tunnelId: m.tunnelId },
        `tunnel refused: ${m.reason}`,
      ),
    ),
    events.socksAuthFailed.subscribe((m) =>
      limitedRefusal(
        sourceKey(m.remoteAddress),
        { event: "socks.auth-failed", username: m.username, remote: m.remoteAddress },
        "socks authentication failed",
      ),
    ),
    events.adminAuthFailed.subscribe((m) =>
      limitedRefusal(
        sourceKey(m.remoteAddress),
        {
          event: "admin.auth-failed",
          remote: m.remoteAddress,
          reason: m.reason,
          secretId: m.secretId,
          limited: m.limited,
        },
        m.reason === "session"
          ? "admin API: ended console session"
          : m.reason === "missing"
            ? "admin API: no admin token"
            : "admin API: wrong admin token",
      ),
    ),
    events.limitHit.subscribe((m) =>
      limitedRefusal(
        `${m.limit}:${m.key}`,
        { event: "limit.hit", limit: m.limit, key: m.key, max: m.max },
        m.detail,
      ),
    ),
    events.socksDenied.subscribe((m) => {
      if (m.command === "bind") {
        audit.warn(
          {
            event: "socks.bind-denied",
            client: m.clientName,
            clientId: m.clientId,
            remote: m.remoteAddress,
            host: m.host,
            port: m.port,
            reason: "no live connection to a mapped host",
          },
          "BIND without a live connection to a mapped host",
        );
        return;
      }
      audit.warn(
        {
          event: "socks.denied",
          client: m.clientName,
          clientId: m.clientId,
          remote: m.remoteAddress,
          location: m.location,
          host: m.host,
          port: m.port,
          reason: "no mapping covers it",
          nearest: m.nearest,
        },
        `denied ${m.host}:${m.port}: no mapping in location ${m.location}`,
      );
    }),
    events.socksOpened.subscribe((m) => {
      // BIND's peer was audited when it listened, an active-mode dial-back where it was dialled
      if (m.grant !== "connect" && m.grant !== "ftp-data") return;
      audit.info(
        {
          event: m.grant === "connect" ? "socks.connect" : "socks.ftp-data",
          connectionId: m.connectionId,
          client: m.clientName,
          location: m.location,
          virtualHost: m.virtualHost,
          virtualPort: m.virtualPort,
          mappingId: m.mappingId,
          agentId: m.agentId,
          streamId: m.streamId,
        },
        "connected",
      );
    }),
    events.socksBindListening.subscribe((m) =>
      audit.info(
        {
          event: "socks.bind",
          client: m.clientName,
          location: m.location,
          virtualHost: m.virtualHost,
          listen: m.listen,
          agentId: m.agentId,
        },
        "bind listening",
      ),
    ),
    events.ftpBounceRefused.subscribe((m) =>
      audit.warn(
        {
          event: "ftp.bounce-refused",
          connectionId: m.connectionId,
          client: m.clientName,
          named: m.named,
          clientAddress: m.clientAddress,
        },
        `${m.verb} names ${m.named.slice(0, m.named.lastIndexOf(":"))}, not the client's own address; refused (FTP bounce)`,
      ),
    ),
    events.ftpActiveDial.subscribe((m) => {
      if (m.outcome !== "connected") return;
      audit.info(
        {
          event: "ftp.active-data",
          connectionId: m.dataConnectionId,
          client: m.clientName,
          dialBack: m.dialBack,
          peer: m.peer,
        },
        "active-mode data connected",
      );
    }),
  ];
  return () => {
    for (const stop of stops) stop();
    limited.close();
  };
}
