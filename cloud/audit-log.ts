/**
 * The audit log: a line with `"audit": true` and an `event` field for every grant and denial,
 * written from the relay's events. The lines and their fields are what operators and tests
 * read (README: socks.connect, socks.ftp-data, socks.bind, socks.denied, socks.bind-denied,
 * socks.auth-failed, ftp.bounce-refused, ftp.active-data).
 */
import type { Logger } from "../shared/logger.js";
import type { RelayEvents } from "./events.js";

/** Write audit lines until the returned function is called. */
export function writeAuditLog(events: RelayEvents, audit: Logger): () => void {
  const stops = [
    events.socksAuthFailed.subscribe((m) =>
      audit.warn(
        { event: "socks.auth-failed", username: m.username, remote: m.remoteAddress },
        "socks authentication failed",
      ),
    ),
    events.socksDenied.subscribe((m) => {
      if (m.command === "bind") {
        audit.warn(
          {
            event: "socks.bind-denied",
            client: m.clientName,
            clientId: m.clientId,
            host: m.host,
            port: m.port,
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
          location: m.location,
          host: m.host,
          port: m.port,
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
  };
}
