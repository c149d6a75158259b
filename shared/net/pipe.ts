/**
 * Splice a TCP socket and a tunnel stream, both ways, with backpressure end to end:
 * socket → stream pauses the socket when the stream is out of credit; stream → socket
 * returns credit only once the socket took the bytes (below its high-water mark or on
 * 'drain'). FIN travels as a half-close; any failure travels as a reset, never as a
 * clean end, so a truncated transfer cannot look complete.
 *
 * A relay holds one pipe per connection, tens of thousands of them: a pipe is one object,
 * the stream's handlers are its methods, and the socket listeners are shared functions that
 * find their pipe on the socket, so no closures are made per connection.
 */
import type { Socket } from "node:net";
import type { UnderpassError } from "../errors.js";
import { RESET_CODE, type ResetCode } from "../tunnel/constants.js";
import type { MuxStream, StreamHandlers } from "../tunnel/mux-stream.js";
import { abortSocket } from "./socket-abort.js";

export interface PipeEvents {
  /** Both directions finished or the pair broke; called once. */
  onClose?(outcome: {
    error: UnderpassError | null;
    resetCode: ResetCode | null;
    localError: Error | null;
  }): void;
}

const kPipe = Symbol("underpass.pipe");

/** A socket spliced to a stream carries its pipe. */
type PipedSocket = Socket & { [kPipe]: SocketStreamPipe };

class SocketStreamPipe implements StreamHandlers {
  readonly #socket: Socket;
  readonly #stream: MuxStream;
  readonly #events: PipeEvents;
  /** Bytes handed to the socket whose credit is not yet returned. */
  #held = 0;
  #done = false;
  #socketEnded = false;
  #corked = false;

  constructor(socket: Socket, stream: MuxStream, events: PipeEvents) {
    this.#socket = socket;
    this.#stream = stream;
    this.#events = events;
  }

  // ---- stream → socket (StreamHandlers) ---------------------------------------------------

  onData(chunk: Buffer): void {
    const socket = this.#socket;
    this.#held += chunk.length;
    // Pieces that arrive in one turn of the event loop leave in one writev (uncorked in the
    // check phase right after the poll phase that read them): fewer syscalls and wake-ups.
    if (!this.#corked) {
      this.#corked = true;
      socket.cork();
      setImmediate(uncork, this);
    }
    if (socket.write(chunk)) this.#returnCredit();
  }

  onEnd(): void {
    this.#socket.end();
  }

  onReset(err: UnderpassError, code: ResetCode | null): void {
    // RST to the local peer: the break must not look like a clean end of file
    abortSocket(this.#socket);
    this.#finish(err, code, null);
  }

  onDrain(): void {
    this.#socket.resume();
  }

  // ---- socket → stream --------------------------------------------------------------------

  uncork(): void {
    this.#corked = false;
    this.#socket.uncork();
  }

  socketDrained(): void {
    this.#returnCredit();
  }

  socketData(chunk: Buffer): void {
    if (!this.#stream.write(chunk)) this.#socket.pause();
  }

  socketEnded(): void {
    this.#socketEnded = true;
    this.#stream.end();
  }

  socketFailed(err: Error): void {
    this.#stream.reset(RESET_CODE.CONNECTION_RESET, err.message);
    this.#finish(null, null, err);
  }

  socketClosed(): void {
    const stream = this.#stream;
    if (stream.phase !== "closed") {
      // closed without both FINs: a break, not an orderly end
      if (!(this.#socketEnded && stream.readEnded))
        stream.reset(RESET_CODE.CONNECTION_RESET, "socket closed");
    }
    this.#finish(null, null, null);
  }

  #returnCredit(): void {
    if (this.#held > 0) {
      this.#stream.consumed(this.#held);
      this.#held = 0;
    }
  }

  #finish(error: UnderpassError | null, resetCode: ResetCode | null, localError: Error | null): void {
    if (this.#done) return;
    this.#done = true;
    this.#events.onClose?.({ error, resetCode, localError });
  }
}

function uncork(pipe: SocketStreamPipe): void {
  pipe.uncork();
}
function onSocketDrain(this: PipedSocket): void {
  this[kPipe].socketDrained();
}
function onSocketData(this: PipedSocket, chunk: Buffer): void {
  this[kPipe].socketData(chunk);
}
function onSocketEnd(this: PipedSocket): void {
  this[kPipe].socketEnded();
}
function onSocketError(this: PipedSocket, err: Error): void {
  this[kPipe].socketFailed(err);
}
function onSocketClose(this: PipedSocket): void {
  this[kPipe].socketClosed();
}

/** The socket must have been created with `allowHalfOpen: true`. */
export function pipeSocketStream(socket: Socket, stream: MuxStream, events: PipeEvents = {}): void {
  const pipe = new SocketStreamPipe(socket, stream, events);
  (socket as PipedSocket)[kPipe] = pipe;
  stream.attach(pipe);
  socket.on("drain", onSocketDrain);
  socket.on("data", onSocketData);
  socket.on("end", onSocketEnd);
  socket.on("error", onSocketError);
  socket.on("close", onSocketClose);
}
