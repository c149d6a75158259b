/**
 * A SOCKS BIND between its two replies (RFC 1928 §6): the agent listens on premises and the
 * client waits for the second reply. Exactly one of these ends the wait: the peer connects,
 * the listener breaks (timed out, tunnel gone), the client goes away, or the relay cancels it
 * (its control connection went away, its access was revoked). Every end but the peer resets
 * the stream, which closes the listener on premises.
 */
import type { Socket } from "node:net";
import type { UnderpassError } from "../../shared/errors.js";
import { RESET_CODE } from "../../shared/tunnel/constants.js";
import type { MuxStream } from "../../shared/tunnel/mux-stream.js";
import type { BindPeer, BindPeers } from "../tunnel/bind-peers.js";

export interface BindWaitEnds {
  /**
   * The peer connected and the client is still there: second reply and splice. `early` are
   * the bytes the client sent meanwhile (the socket is paused again).
   */
  onPeer(peer: BindPeer, early: Buffer): void;
  /** The listener broke before a peer came (the client may be gone too). */
  onBroken(err: UnderpassError): void;
  /** The wait is over, whichever way (`withPeer`: onPeer follows); before the other two. */
  onOver(withPeer: boolean): void;
}

/** Ends the wait from the relay's side; false when it was over already. */
export type CancelBindWait = (reason: string) => boolean;

/** Bytes a BIND client may send before its second reply; past them it is not read until then. */
const MAX_EARLY_BYTES = 64 * 1024;

/**
 * The client's socket is read during the wait, or a client that leaves would go unnoticed (a
 * paused socket sees no FIN and no RST) and its listener on premises would wait its whole
 * timeout. What it sends meanwhile is kept for the splice, within MAX_EARLY_BYTES; a FIN ends
 * the wait like a close (a BIND client that half-closes has nothing to wait for).
 */
export function waitForBindPeer(
  socket: Socket,
  stream: MuxStream,
  peers: BindPeers,
  ends: BindWaitEnds,
): CancelBindWait {
  let waiting = true;
  let cancel = (): void => {};
  const early: Buffer[] = [];
  let earlyBytes = 0;
  const onData = (chunk: Buffer): void => {
    early.push(chunk);
    earlyBytes += chunk.length;
    if (earlyBytes > MAX_EARLY_BYTES) socket.pause();
  };
  const onEnd = (): void => {
    socket.destroy();
  };
  const over = (withPeer = false): boolean => {
    if (!waiting) return false;
    waiting = false;
    socket.off("close", onClientGone);
    socket.off("data", onData);
    socket.off("end", onEnd);
    socket.pause();
    cancel();
    ends.onOver(withPeer);
    return true;
  };
  const onClientGone = (): void => {
    if (over()) stream.reset(RESET_CODE.CANCELLED, "client went away");
  };
  socket.once("close", onClientGone);
  socket.on("data", onData);
  socket.on("end", onEnd);
  socket.resume();
  cancel = peers.expect(stream, (peer) => {
    const there = !socket.destroyed;
    if (!over(there)) return;
    if (there) ends.onPeer(peer, Buffer.concat(early));
    else stream.reset(RESET_CODE.CANCELLED, "client went away");
  });
  // until the peer connects, the stream can only break: the splice takes it over after that
  stream.attach({
    onData: () => {},
    onEnd: () => {},
    onReset: (err) => {
      if (over()) ends.onBroken(err);
    },
    onDrain: () => {},
  });
  return (reason) => {
    if (!over()) return false;
    stream.reset(RESET_CODE.CANCELLED, reason);
    return true;
  };
}
