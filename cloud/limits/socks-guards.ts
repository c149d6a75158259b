/**
 * The bounds of the SOCKS endpoint, shared by all its connections: before authentication
 * (per source, in all), failed authentications (per source and per username), and after it
 * (connections per client and per source).
 */
import type { Tunnel } from "../tunnel/registry.js";
import type { RelayBounds } from "./bounds.js";
import { FailureBackoff } from "./failure-backoff.js";
import { KeyedCounter } from "./keyed-counter.js";
import type { LimitHits } from "./limit-hits.js";
import { LIMIT } from "./limit-names.js";
import { PreauthGuard } from "./preauth-guard.js";

export interface SocksGuards {
  readonly bounds: RelayBounds;
  readonly hits: LimitHits;
  readonly preauth: PreauthGuard;
  /** Failed RFC 1929 authentications, by `source:` and `user:` keys. */
  readonly authBackoff: FailureBackoff;
  readonly perClient: KeyedCounter;
  readonly perSource: KeyedCounter;
  /** Every tunnel of a location is at its bounds on streams or pending opens. */
  tunnelsFull(location: string, tunnel: Tunnel): void;
}

export function socksGuards(bounds: RelayBounds, hits: LimitHits): SocksGuards {
  return {
    bounds,
    hits,
    preauth: new PreauthGuard({
      perSource: bounds.socksPreauthPerSource,
      total: bounds.socksPreauthTotal,
      // the SOCKS handshake has its own deadline (UNDERPASS_SOCKS_HANDSHAKE_TIMEOUT_MS)
      deadlineMs: 0,
      names: {
        perSource: LIMIT.SOCKS_PREAUTH_PER_SOURCE,
        total: LIMIT.SOCKS_PREAUTH_TOTAL,
        deadline: null,
      },
      hits,
      what: "SOCKS",
    }),
    authBackoff: new FailureBackoff({
      freeFailures: bounds.authFreeFailures,
      maxDelayMs: bounds.authBackoffMaxMs,
    }),
    perClient: new KeyedCounter(bounds.socksConnectionsPerClient),
    perSource: new KeyedCounter(bounds.socksConnectionsPerSource),
    tunnelsFull(location, t) {
      if (t.session.streamCount >= t.maxStreams) {
        hits.hit(
          LIMIT.TUNNEL_STREAMS,
          t.id,
          t.maxStreams,
          `location ${location}: every tunnel holds ${t.maxStreams} streams; refused`,
        );
      } else {
        hits.hit(
          LIMIT.TUNNEL_PENDING_OPENS,
          t.id,
          t.maxPendingOpens,
          `location ${location}: every tunnel has ${t.maxPendingOpens} opens pending; refused`,
        );
      }
    },
  };
}
