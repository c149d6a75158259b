/**
 * The SOCKS connection's life as relay events (cloud/events.ts). Each function builds its
 * message only when the channel has a subscriber.
 */
import type { Socket } from "node:net";
import type { UnderpassError } from "../../shared/errors.js";
import type { RelayEvents } from "../events.js";
import type { Tunnel } from "../tunnel/registry.js";
import type { Principal } from "./authenticate.js";
import type { BindControl } from "./bind-controls.js";
import type { SocksRequest } from "./codec.js";
import type { Socks5Reply } from "./reply.js";
import type { Destination } from "./resolve.js";

/** The client's end as the relay's socket sees it. */
export function peerOf(socket: Socket): { remoteAddress: string; remotePort: number } {
  return { remoteAddress: socket.remoteAddress ?? "", remotePort: socket.remotePort ?? 0 };
}

export function publishAccepted(events: RelayEvents, socket: Socket): void {
  const ch = events.socksAccepted;
  if (!ch.active) return;
  ch.publish({
    relayId: ch.relayId,
    ...peerOf(socket),
    localAddress: socket.localAddress ?? "",
    localPort: socket.localPort ?? 0,
  });
}

export function publishAuthenticated(
  events: RelayEvents,
  socket: Socket,
  who: Principal,
  method: "password" | "none",
): void {
  const ch = events.socksAuthenticated;
  if (ch.active) ch.publish({ relayId: ch.relayId, ...peerOf(socket), method, ...who });
}

export function publishAuthFailed(events: RelayEvents, socket: Socket, username: string): void {
  const ch = events.socksAuthFailed;
  if (ch.active) ch.publish({ relayId: ch.relayId, ...peerOf(socket), username });
}

export function publishRequested(
  events: RelayEvents,
  socket: Socket,
  who: Principal,
  req: SocksRequest,
  handshakeMs: number,
): void {
  const ch = events.socksRequested;
  if (!ch.active) return;
  ch.publish({
    relayId: ch.relayId,
    ...peerOf(socket),
    command: req.command,
    clientId: who.clientId,
    location: who.location,
    host: req.host,
    port: req.port,
    handshakeMs,
  });
}

export function publishDenied(
  events: RelayEvents,
  socket: Socket,
  who: Principal,
  command: "connect" | "bind",
  to: Destination,
  nearest: readonly string[],
): void {
  const ch = events.socksDenied;
  if (!ch.active) return;
  ch.publish({
    relayId: ch.relayId,
    ...peerOf(socket),
    command,
    clientId: who.clientId,
    clientName: who.clientName,
    location: who.location,
    host: to.host,
    port: to.port,
    nearest,
  });
}

export function publishRefused(
  events: RelayEvents,
  socket: Socket,
  who: Principal,
  reply: Socks5Reply,
  err: UnderpassError,
): void {
  const ch = events.socksRefused;
  if (!ch.active) return;
  ch.publish({
    relayId: ch.relayId,
    ...peerOf(socket),
    reply,
    location: who.location,
    code: err.code,
    message: err.message,
  });
}

export function publishBindListening(
  events: RelayEvents,
  who: Principal,
  control: BindControl,
  tunnel: Tunnel,
  listen: { address: string; port: number },
): void {
  const ch = events.socksBindListening;
  if (!ch.active) return;
  ch.publish({
    relayId: ch.relayId,
    clientId: who.clientId,
    clientName: who.clientName,
    location: control.location,
    virtualHost: control.virtualHost,
    listen: `${listen.address}:${listen.port}`,
    agentId: tunnel.agentId,
    tunnelId: tunnel.id,
  });
}
