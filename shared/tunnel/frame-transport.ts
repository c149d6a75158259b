/**
 * The byte pipe under a session: a WebSocket in production, an in-memory pair in tests. The
 * bytes given to `send()` and `sendFrame()` are the transport's from then on: it may change
 * them in place (a WebSocket client masks them, RFC 6455 §5.3), so give a copy of bytes you keep.
 */
export interface FrameTransport {
  /** Queue bytes for the peer, in order. `onSent` fires once they left user space. */
  send(data: Buffer, onSent?: () => void): void;
  /**
   * Optional: queue a frame's header and its payload as one unit, the payload without a copy
   * (a WebSocket transport makes them one WebSocket frame). Without it, two `send()`s.
   */
  sendFrame?(head: Buffer, payload: Buffer, onSent?: () => void): void;
  /**
   * Optional: hand what this turn of the event loop has queued (corked) to the kernel now, so
   * that bytes still in user space are those the kernel does not take, not those of one busy
   * turn. Without it, bytes leave as the transport sees fit.
   */
  flush?(): void;
  /** Bytes queued and not yet handed to the kernel. */
  readonly bufferedAmount: number;
  /** Close the transport; the owner then calls `session.transportClosed()`. */
  close(code: number, reason: string): void;
  /**
   * Optional: drop the connection at once, without a close handshake, for a peer that has gone
   * silent (it would never answer one). What was queued is flushed to the kernel first, as far
   * as it takes it. Without it, `close()`.
   */
  terminate?(): void;
}
