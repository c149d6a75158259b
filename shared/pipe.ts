/**
 * Splice a TCP socket and a tunnel stream, both ways, with backpressure end to end:
 * socket → stream pauses the socket when the stream is out of credit; stream → socket
 * returns credit only once the socket took the bytes (below its high-water mark or on
 * 'drain'). FIN travels as a half-close; any failure travels as a reset, never as a
 * clean end, so a truncated transfer cannot look complete.
 */
import type { Socket } from "node:net";
import type { UnderpassError } from "./errors.js";
import type { MuxStream } from "./mux-stream.js";
import { abortSocket } from "./socket-abort.js";
import { RESET_CODE, type ResetCode } from "./tunnel-constants.js";

export interface PipeEvents {
  /** Both directions finished or the pair broke; called once. */
  onClose?(outcome: {
    error: UnderpassError | null;
    resetCode: ResetCode | null;
    localError: Error | null;
  }): void;
}

/** The socket must have been created with `allowHalfOpen: true`. */
export function pipeSocketStream(socket: Socket, stream: MuxStream, events: PipeEvents = {}): void {
  let held = 0;
  let done = false;
  let socketEnded = false;

  const finish = (
    error: UnderpassError | null,
    resetCode: ResetCode | null,
    localError: Error | null,
  ): void => {
    if (done) return;
    done = true;
    events.onClose?.({ error, resetCode, localError });
  };

  // Pieces that arrive in one turn of the event loop leave in one writev (uncorked in the
  // check phase right after the poll phase that read them): fewer syscalls and wake-ups.
  let corked = false;
  const uncork = (): void => {
    corked = false;
    socket.uncork();
  };

  stream.attach({
    onData(chunk) {
      held += chunk.length;
      if (!corked) {
        corked = true;
        socket.cork();
        setImmediate(uncork);
      }
      if (socket.write(chunk)) {
        stream.consumed(held);
        held = 0;
      }
    },
    onEnd() {
      socket.end();
    },
    onReset(err, code) {
      // RST to the local peer: the break must not look like a clean end of file
      abortSocket(socket);
      finish(err, code, null);
    },
    onDrain() {
      socket.resume();
    },
  });

  socket.on("drain", () => {
    if (held > 0) {
      stream.consumed(held);
      held = 0;
    }
  });
  socket.on("data", (chunk: Buffer) => {
    if (!stream.write(chunk)) socket.pause();
  });
  socket.on("end", () => {
    socketEnded = true;
    stream.end();
  });
  socket.on("error", (err) => {
    stream.reset(RESET_CODE.CONNECTION_RESET, err.message);
    finish(null, null, err);
  });
  socket.on("close", () => {
    if (stream.phase !== "closed") {
      // closed without both FINs: a break, not an orderly end
      if (!(socketEnded && stream.readEnded)) stream.reset(RESET_CODE.CONNECTION_RESET, "socket closed");
    }
    finish(null, null, null);
  });
}
