/**
 * Where a request goes. CONNECT: a data port an FTP-aware control connection of this client
 * announced comes first, then the mappings of the client's location. BIND: the live connection
 * of this client it belongs to.
 */
import { NotAllowedError } from "../../shared/errors.js";
import { normalizeHost } from "../../shared/net/host.js";
import { formatPortRange } from "../../shared/net/port-range.js";
import type { FtpExpectations } from "../ftp/expectations.js";
import type { MappingRecord, Store } from "../store/store.js";
import { resolveDestination } from "./access-control.js";
import type { Principal } from "./authenticate.js";
import { type BindControl, NO_OTHER_RELAYS, type RemoteBindControls } from "./bind-controls.js";
import type { LiveConnections } from "./connections.js";

/** Where a CONNECT goes on premises. */
export interface Target {
  /** `ftp-data`: a port an FTP-aware control connection announced; `connect`: a mapping. */
  readonly grant: "connect" | "ftp-data";
  readonly mapping: MappingRecord;
  readonly internalHost: string;
  readonly internalPort: number;
  /** The agent to prefer: an FTP data connection goes where its control connection went. */
  readonly agentId: string | undefined;
}

/** No mapping covers the destination ("not allowed by ruleset"). */
export interface Denial {
  readonly error: NotAllowedError;
  /** The mappings nearest to what was asked, `virtualHost:ports`, for the audit log. */
  readonly nearest: readonly string[];
}

export interface Destination {
  readonly host: string;
  readonly port: number;
}

export async function resolveConnect(
  store: Store,
  expectations: FtpExpectations,
  who: Principal,
  owner: string,
  to: Destination,
  /** The relay address the client reached (what ftplib under proxychains names). */
  ownAddress: string,
): Promise<Target | Denial> {
  const data = await expectations.take(owner, to.host, to.port, ownAddress);
  if (data) {
    const { mapping, internalHost, internalPort, agentId } = data;
    return { grant: "ftp-data", mapping, internalHost, internalPort, agentId };
  }
  const g = resolveDestination(await store.mappingsOf(who.location), to.host, to.port);
  if (!g.allowed) {
    return {
      error: new NotAllowedError(`${to.host}:${to.port} is not mapped for location ${who.location}`),
      nearest: g.nearest.map((m) => `${m.virtualHost}:${formatPortRange(m.virtualPort)}`),
    };
  }
  const { mapping, internalHost, internalPort } = g;
  return { grant: "connect", mapping, internalHost, internalPort, agentId: undefined };
}

/** Where a BIND listens: beside the live connection it belongs to. */
export interface BindTarget {
  readonly control: BindControl;
  /** Carried by this relay (false: by another relay of the cluster). */
  readonly local: boolean;
  readonly mapping: MappingRecord;
}

/**
 * DST.ADDR of a BIND is not trusted (socksify sends fake addresses): the BIND belongs to a
 * live CONNECT of this client, its newest to DST's host if there is one, else its newest. In a
 * cluster one to DST's host on this relay comes first, then one to it on another relay, then
 * this relay's newest, then another relay's.
 */
export async function resolveBind(
  store: Store,
  connections: LiveConnections,
  who: Principal,
  remoteAddress: string,
  to: Destination,
  others: RemoteBindControls = NO_OTHER_RELAYS,
): Promise<BindTarget | Denial | NotAllowedError> {
  const here = connections.controlFor(who.clientId, remoteAddress, to.host);
  const toHost = (c: BindControl | undefined): boolean =>
    c !== undefined && normalizeHost(c.virtualHost) === normalizeHost(to.host);
  // with one here, another relay's counts only when it is to DST's host, and is not waited for
  const there = toHost(here) ? undefined : await others.find(who.clientId, remoteAddress, to.host, !here);
  const local = here !== undefined && (toHost(here) || !toHost(there));
  const control = local ? here : there;
  if (!control) {
    return {
      error: new NotAllowedError("BIND needs a live connection of this client to a mapped host"),
      nearest: [],
    };
  }
  const mapping = await store.getMapping(control.mappingId);
  if (!mapping) return new NotAllowedError("the mapping of the connection is gone");
  return { control, local, mapping };
}
