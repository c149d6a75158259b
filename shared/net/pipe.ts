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
 *
 * A filter (an FTP control channel) may read and rewrite what crosses, and hold the socket
 * while it works on a command; without one, bytes pass untouched.
 */
import type { Socket } from "node:net";
import type { UnderpassError } from "../errors.js";
import { RESET_CODE, type ResetCode } from "../tunnel/constants.js";
import type { MuxStream, StreamHandlers } from "../tunnel/mux-stream.js";
import { abortSocket } from "./socket-abort.js";

export interface PipeOptions {
  /** Both directions finished or the pair broke; called once. */
  onClose?(outcome: {
    error: UnderpassError | null;
    resetCode: ResetCode | null;
    localError: Error | null;
  }): void;
  /** Bytes the socket sent before the pipe existed (after a SOCKS request); they go first. */
  readonly early?: Buffer;
  readonly filter?: PipeFilter;
}

/**
 * Reads, and may rewrite, what crosses a pipe. Credit for stream bytes returns once the
 * socket took what `fromStream` made of them (at once when it made nothing).
 */
export interface PipeFilter {
  /** Bytes from the socket: what should reach the stream goes through `pipe.toStream()`. */
  fromSocket(chunk: Buffer, pipe: PipeControl): void;
  /** Bytes from the stream: returns the bytes to write to the socket (empty for none). */
  fromStream(chunk: Buffer, pipe: PipeControl): Buffer;
}

/** What a filter may do with its pipe. */
export interface PipeControl {
  /** Write towards the stream; the socket pauses while the stream is out of credit. */
  toStream(data: Buffer): void;
  /** Stop reading the socket, and hold back its FIN, until `release()`. */
  hold(): void;
  /** Read the socket again; a FIN that came meanwhile goes out now. */
  release(): void;
}

const kPipe = Symbol("underpass.pipe");

/** A socket spliced to a stream carries its pipe. */
type PipedSocket = Socket & { [kPipe]: SocketStreamPipe };

class SocketStreamPipe implements StreamHandlers, PipeControl {
  readonly #socket: Socket;
  readonly #stream: MuxStream;
  readonly #options: PipeOptions;
  readonly #filter: PipeFilter | null;
  /** Bytes handed to the socket whose credit is not yet returned. */
  #held = 0;
  #done = false;
  #socketEnded = false;
  #corked = false;
  /** The stream's last write() said "no more": the socket stays paused until onDrain. */
  #streamFull = false;
  /** A filter holds the socket; its FIN waits in `#finHeld`. */
  #holding = false;
  #finHeld = false;

  constructor(socket: Socket, stream: MuxStream, options: PipeOptions) {
    this.#socket = socket;
    this.#stream = stream;
    this.#options = options;
    this.#filter = options.filter ?? null;
  }

  /** Send the early bytes and start reading the socket. */
  start(early: Buffer | undefined): void {
    if (early !== undefined && early.length > 0) this.socketData(early);
    if (!this.#streamFull && !this.#holding) this.#socket.resume();
  }

  // ---- stream → socket (StreamHandlers) ---------------------------------------------------

  onData(data: Buffer): void {
    const socket = this.#socket;
    this.#held += data.length;
    const chunk = this.#filter === null ? data : this.#filter.fromStream(data, this);
    if (chunk.length === 0) {
      this.#returnCredit();
      return;
    }
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
    this.#streamFull = false;
    if (!this.#holding) this.#socket.resume();
  }

  // ---- PipeControl -------------------------------------------------------------------------

  toStream(data: Buffer): void {
    if (!this.#stream.write(data)) {
      this.#streamFull = true;
      this.#socket.pause();
    }
  }

  hold(): void {
    this.#holding = true;
    this.#socket.pause();
  }

  release(): void {
    this.#holding = false;
    if (this.#finHeld) {
      this.#finHeld = false;
      this.#stream.end();
    } else if (!this.#streamFull) {
      this.#socket.resume();
    }
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
    if (this.#filter === null) this.toStream(chunk);
    else this.#filter.fromSocket(chunk, this);
  }

  socketEnded(): void {
    this.#socketEnded = true;
    if (this.#holding) this.#finHeld = true;
    else this.#stream.end();
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
    this.#options.onClose?.({ error, resetCode, localError });
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

/** The options of a pipe that has none: one object for all of them, not one per call. */
const NO_OPTIONS: PipeOptions = {};

/**
 * Splice until both sides are done; the socket is read from here on (it may be paused before).
 * The socket must have been created with `allowHalfOpen: true`.
 */
export function pipeSocketStream(socket: Socket, stream: MuxStream, options: PipeOptions = NO_OPTIONS): void {
  const pipe = new SocketStreamPipe(socket, stream, options);
  (socket as PipedSocket)[kPipe] = pipe;
  stream.attach(pipe);
  socket.on("drain", onSocketDrain);
  socket.on("data", onSocketData);
  socket.on("end", onSocketEnd);
  socket.on("error", onSocketError);
  socket.on("close", onSocketClose);
  pipe.start(options.early);
}
