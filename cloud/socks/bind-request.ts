/**
 * A SOCKS BIND request (RFC 1928 §6, FTP active mode), once read: the agent that carries the
 * BIND's control connection (resolve.ts) listens on premises where that connection's internal
 * host can reach it; the first reply names the listener, the second the peer that connected.
 *
 * The listener counts under the BIND bounds (per client, per agent) until the wait ends, and
 * lives no longer than its client: the wait ends when the client leaves, when its control
 * connection closes, or when its access is revoked (bind-wait.ts, revocation.ts).
 */
import type { Socket } from "node:net";
import { UnderpassError } from "../../shared/errors.js";
import { OPEN_KIND, type OpenKind, RESET_CODE } from "../../shared/tunnel/constants.js";
import { CAPABILITY } from "../../shared/tunnel/handshake.js";
import type { OpenResult } from "../../shared/tunnel/mux-session.js";
import type { BufferReservation } from "../limits/buffer-budget.js";
import { clientKey } from "../limits/source-key.js";
import type { MappingRecord } from "../store/store.js";
import type { BindPeer } from "../tunnel/bind-peers.js";
import type { Tunnel } from "../tunnel/registry.js";
import type { Principal } from "./authenticate.js";
import { type CancelBindWait, waitForBindPeer } from "./bind-wait.js";
import { encodeReply, type SocksRequest } from "./codec.js";
import { SOCKS5_REPLY } from "./constants.js";
import { pickTunnel } from "./open.js";
import { peerOf, publishBindListening, publishDenied, publishRefused } from "./publish.js";
import type { Socks5Reply } from "./reply.js";
import { type BindTarget, resolveBind } from "./resolve.js";
import type { AccessWatch } from "./revocation.js";
import type { SocksServerOptions } from "./server.js";
import { type SpliceDeps, splice } from "./splice.js";
import type { SocksState } from "./state.js";

/** What a BIND needs of its SOCKS connection (client-connection.ts). */
export interface BindHost {
  readonly o: SocksServerOptions;
  readonly splice: SpliceDeps;
  readonly socket: Socket;
  readonly who: Principal;
  /** Whose announced FTP ports these are (ownerKey). */
  readonly owner: string;
  readonly access: AccessWatch;
  fail(err: UnderpassError): void;
  open(
    tunnel: Tunnel,
    kind: OpenKind,
    host: string,
    port: number,
    timeoutMs: number,
  ): Promise<OpenResult | null>;
  stillAllowed(mapping: MappingRecord): Promise<boolean>;
  enter(state: SocksState): boolean;
  reply(address: string, port: number): void;
  refuse(reply: Buffer): void;
  /** The client's bytes after its request, with `more` that came during the wait. */
  takeEarly(more: Buffer): Buffer;
  /** The wait began (what ends it), or ended (null). */
  waiting(cancel: CancelBindWait | null): void;
}

export async function serveBind(h: BindHost, req: SocksRequest): Promise<void> {
  const { o, who, socket } = h;
  const target = await resolveBind(
    o.store,
    o.connections,
    who,
    socket.remoteAddress ?? "",
    req,
    o.bindControls,
  );
  if (target instanceof UnderpassError) return h.fail(target);
  if ("error" in target) {
    publishDenied(o.events, socket, who, "bind", req, target.nearest);
    return h.fail(target.error);
  }
  const { control, mapping } = target;
  h.access.mappingId = mapping.id;
  const tunnel = pickTunnel(
    o.registry,
    control.location,
    { capability: CAPABILITY.BIND, agentId: control.agentId },
    o.guards.tunnelsFull,
  );
  if (tunnel instanceof UnderpassError) return h.fail(tunnel);
  const client = clientKey(who.clientId, socket.remoteAddress);
  const reservation = o.budget.reserve(client);
  if (reservation instanceof UnderpassError) return h.fail(reservation);
  const listener = o.bindListeners.take(client, tunnel.agentId);
  if (listener instanceof UnderpassError) {
    reservation.release();
    return h.fail(listener);
  }
  const giveBack = (): void => {
    listener();
    reservation.release();
  };
  const { internalHost, internalPort } = control;
  const opened = await h.open(tunnel, OPEN_KIND.BIND, internalHost, internalPort, o.bindTimeoutMs);
  if (!opened) return giveBack();
  if (!(await h.stillAllowed(mapping)) || !h.enter("bound")) {
    opened.stream.reset(RESET_CODE.CANCELLED, "access revoked");
    return giveBack();
  }
  const { stream, address, port } = opened;
  // known to every relay before the client can name it in a PORT on its control connection
  const forget = await o.ftpExpectations.noteBindListen(h.owner, address, port);
  if (socket.destroyed) {
    forget();
    stream.reset(RESET_CODE.CANCELLED, "client went away");
    return giveBack();
  }
  publishBindListening(o.events, who, control, tunnel, opened);
  h.reply(address, port);
  const broke = (err: UnderpassError, reply: Socks5Reply): void => {
    publishRefused(o.events, socket, who, reply, err);
    if (h.enter("closed") && !socket.destroyed) h.refuse(encodeReply(reply));
  };
  // a BIND belongs to its control connection: it goes when that one goes
  const controlGone = (): void => {
    if (cancel("its control connection closed")) {
      broke(new UnderpassError("the control connection closed"), SOCKS5_REPLY.GENERAL_FAILURE);
    }
  };
  const unlink = target.local
    ? o.connections.whenGone(control.id, controlGone)
    : o.bindControls.whenGone(control, controlGone);
  const cancel = waitForBindPeer(socket, stream, o.bindPeers, {
    onOver: (withPeer) => {
      h.waiting(null);
      forget();
      unlink();
      // the listener is gone either way; with a peer, its window stays reserved for the splice
      listener();
      if (!withPeer) reservation.release();
    },
    onPeer: (peer, early) => bindPeer(h, target, tunnel, opened, peer, early, reservation),
    onBroken: (err) => broke(err, SOCKS5_REPLY.HOST_UNREACHABLE),
  });
  h.waiting(cancel);
}

/** The peer connected: the second reply, and the splice. */
function bindPeer(
  h: BindHost,
  { control, mapping }: BindTarget,
  tunnel: Tunnel,
  opened: OpenResult,
  peer: BindPeer,
  early: Buffer,
  reservation: BufferReservation,
): void {
  if (!h.enter("spliced")) return reservation.release();
  h.access.stop();
  h.reply(peer.address, peer.port);
  splice(
    h.splice,
    {
      grant: "bind",
      who: h.who,
      mapping,
      virtualHost: control.virtualHost,
      virtualPort: control.virtualPort,
      internalHost: peer.address,
      internalPort: peer.port,
      tunnel,
      stream: opened.stream,
      socket: h.socket,
      ...peerOf(h.socket),
      openMs: null,
      reservation,
    },
    h.takeEarly(early),
  );
}
