/**
 * A SOCKS BIND between its two replies (RFC 1928 §6): the agent listens on premises and the
 * client waits for the second reply. Exactly one of three things ends the wait: the peer
 * connects, the listener breaks (timed out, tunnel gone), or the client goes away.
 */
import type { Socket } from "node:net";
import type { UnderpassError } from "../../shared/errors.js";
import { RESET_CODE } from "../../shared/tunnel/constants.js";
import type { MuxStream } from "../../shared/tunnel/mux-stream.js";
import type { BindPeer, BindPeers } from "../tunnel/bind-peers.js";

export interface BindWaitEnds {
  /** The peer connected and the client is still there: second reply and splice. */
  onPeer(peer: BindPeer): void;
  /** The listener broke before a peer came (the client may be gone too). */
  onBroken(err: UnderpassError): void;
  /** The wait is over, whichever way; before the other two. */
  onOver(): void;
}

export function waitForBindPeer(
  socket: Socket,
  stream: MuxStream,
  peers: BindPeers,
  ends: BindWaitEnds,
): void {
  let waiting = true;
  let cancel = (): void => {};
  const over = (): boolean => {
    if (!waiting) return false;
    waiting = false;
    socket.off("close", onClientGone);
    cancel();
    ends.onOver();
    return true;
  };
  const onClientGone = (): void => {
    if (over()) stream.reset(RESET_CODE.CANCELLED, "client went away");
  };
  socket.once("close", onClientGone);
  cancel = peers.expect(stream, (peer) => {
    if (!over()) return;
    if (socket.destroyed) stream.reset(RESET_CODE.CANCELLED, "client went away");
    else ends.onPeer(peer);
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
}
