/**
 * The demo FTP server's data connections (RFC 959 §3.2): a passive listener per PASV/EPSV that
 * accepts one connection, an outgoing connection for PORT/EPRT, and the transfer pumps that move
 * bytes with backpressure and tell a complete transfer from a broken one.
 */
import { once } from "node:events";
import net from "node:net";
import { type Readable, Transform, type TransformCallback, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { normalizeAddress } from "../../shared/net/host.js";
import { isLoopback, parseIp } from "../../shared/net/ip.js";
import { nextPort, type PortRange, portsFrom } from "../../shared/net/port-range.js";

function loopback(address: string): boolean {
  const ip = parseIp(address);
  return ip !== undefined && isLoopback(ip);
}

/** Same host for the purpose of data connections; any two loopback addresses are the same host. */
export function sameHost(a: string, b: string): boolean {
  return normalizeAddress(a) === normalizeAddress(b) || (loopback(a) && loopback(b));
}

/** Listen on host:port; undefined when the port is taken or privileged, the error for anything else. */
function tryListen(host: string, port: number): Promise<net.Server | undefined | Error> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", (err: NodeJS.ErrnoException) => {
      resolve(err.code === "EADDRINUSE" || err.code === "EACCES" ? undefined : err);
    });
    server.listen({ host, port, exclusive: true }, () => resolve(server));
  });
}

/**
 * A listener opened by PASV or EPSV: accepts the first connection from `peer`'s host (others are
 * dropped: no data theft), then stops listening. Closes by itself after `timeoutMs` unused.
 */
export class PassiveListener {
  private socket: net.Socket | undefined;
  private failure: Error | undefined;
  private waiter: { resolve(s: net.Socket): void; reject(e: Error): void } | undefined;
  private readonly timer: NodeJS.Timeout;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    peer: string | undefined,
    timeoutMs: number,
  ) {
    this.timer = setTimeout(() => this.fail(new Error("no data connection within the timeout")), timeoutMs);
    server.on("error", (err) => this.fail(err)); // e.g. EMFILE on accept
    server.on("connection", (socket) => {
      socket.on("error", () => {}); // reported through the transfer that uses it
      if (
        this.socket ||
        this.failure ||
        (peer !== undefined && !sameHost(socket.remoteAddress ?? "", peer))
      ) {
        socket.destroy();
        return;
      }
      this.socket = socket;
      clearTimeout(this.timer);
      server.close();
      if (this.waiter) this.waiter.resolve(socket);
    });
  }

  /**
   * Listen on `host`, on the first port of `ports` that binds (starting at `cursor.next`, which
   * moves on so that consecutive listeners use different ports), or on an OS-assigned port.
   * Undefined when every port of the range is taken.
   */
  static async open(options: {
    host: string;
    ports: PortRange | undefined;
    cursor: { next: number };
    peer: string | undefined;
    timeoutMs: number;
  }): Promise<PassiveListener | undefined> {
    const { host, ports, cursor } = options;
    const candidates = ports ? portsFrom(ports, cursor.next) : [0];
    for (const port of candidates) {
      const server = await tryListen(host, port);
      if (server instanceof Error) throw server;
      if (server === undefined) continue;
      const bound = (server.address() as net.AddressInfo).port;
      if (ports) cursor.next = nextPort(ports, bound);
      return new PassiveListener(server, bound, options.peer, options.timeoutMs);
    }
    return undefined;
  }

  /** False once timed out or closed without a connection. */
  get usable(): boolean {
    return this.failure === undefined;
  }

  /** The accepted data connection; rejects on timeout, on close() or when `signal` aborts. */
  accept(signal: AbortSignal): Promise<net.Socket> {
    if (this.socket) return Promise.resolve(this.socket);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const onAbort = () => this.fail(new Error("aborted"));
      signal.addEventListener("abort", onAbort, { once: true });
      this.waiter = {
        resolve: (s) => {
          signal.removeEventListener("abort", onAbort);
          resolve(s);
        },
        reject: (e) => {
          signal.removeEventListener("abort", onAbort);
          reject(e);
        },
      };
    });
  }

  /** Stop listening and drop a connection nobody took. */
  close(): void {
    this.fail(new Error("data connection closed"));
    this.socket?.destroy();
  }

  private fail(err: Error): void {
    clearTimeout(this.timer);
    this.server.close();
    if (this.socket || this.failure) return;
    this.failure = err;
    this.waiter?.reject(err);
  }
}

/** Connect to the client's PORT/EPRT address, within `timeoutMs`. */
export function connectActive(
  host: string,
  port: number,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const fail = (err: Error) => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    const onAbort = () => fail(new Error("aborted"));
    const onTimeout = () => fail(new Error("timed out connecting to the client"));
    const cleanup = () => {
      socket.setTimeout(0);
      socket.off("timeout", onTimeout);
      signal.removeEventListener("abort", onAbort);
    };
    socket.on("error", fail);
    socket.setTimeout(timeoutMs, onTimeout);
    signal.addEventListener("abort", onAbort, { once: true });
    socket.once("connect", () => {
      cleanup();
      socket.off("error", fail);
      socket.on("error", () => {}); // reported through the transfer that uses it
      resolve(socket);
    });
  });
}

/** How a transfer ended; `local` is a failure of the file side (451), `network` of the data connection (426). */
export type TransferResult = "complete" | "aborted" | "local" | "network";

/**
 * Wait for a socket's 'close' after our FIN: the peer has read everything and closed its side.
 * After `timeoutMs` without that the socket is destroyed (the data is with the kernel by then);
 * an abort (ABOR, session closing) destroys it at once and rejects.
 */
async function closed(socket: net.Socket, timeoutMs: number, signal: AbortSignal): Promise<void> {
  if (socket.closed) return;
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  try {
    await once(socket, "close", { signal });
  } finally {
    clearTimeout(timer);
  }
}

async function pump(
  streams: ReadonlyArray<Readable | Writable>,
  socket: net.Socket,
  local: Readable | Writable,
  signal: AbortSignal,
  idleMs: number,
): Promise<TransferResult> {
  let first: "local" | "network" | undefined;
  local.once("error", () => (first ??= "local"));
  socket.once("error", () => (first ??= "network"));
  socket.setTimeout(idleMs, () => socket.destroy(new Error("data connection idle")));
  try {
    await pipeline(streams, { signal });
    if ("closed" in local && !local.closed && !local.destroyed) await once(local, "close");
    await closed(socket, idleMs, signal);
    return "complete";
  } catch {
    socket.destroy();
    local.destroy();
    if (signal.aborted) return "aborted";
    return first === "local" ? "local" : "network";
  }
}

/** Send `source` on the data connection; complete once the socket has flushed and closed. */
export function sendOnSocket(
  source: Readable,
  socket: net.Socket,
  ascii: boolean,
  signal: AbortSignal,
  idleMs: number,
): Promise<TransferResult> {
  socket.resume(); // nothing is expected from the client; reading lets its FIN be seen
  const chain = ascii ? [source, toNetworkAscii(), socket] : [source, socket];
  return pump(chain, socket, source, signal, idleMs);
}

/** Receive the data connection into `sink`; complete once the client closed and the sink is closed. */
export function receiveFromSocket(
  socket: net.Socket,
  sink: Writable,
  ascii: boolean,
  signal: AbortSignal,
  idleMs: number,
): Promise<TransferResult> {
  const chain = ascii ? [socket, fromNetworkAscii(), sink] : [socket, sink];
  return pump(chain, socket, sink, signal, idleMs);
}

const CR = 0x0d;
const LF = 0x0a;

/** TYPE A on the way out (RFC 959 §3.1.1.1): a bare LF becomes CRLF. */
export function toNetworkAscii(): Transform {
  let lastWasCr = false;
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      const out: number[] = [];
      for (const byte of chunk) {
        if (byte === LF && !lastWasCr) out.push(CR);
        out.push(byte);
        lastWasCr = byte === CR;
      }
      done(null, Buffer.from(out));
    },
  });
}

/** TYPE A on the way in: CRLF becomes LF; a CR at the end of a chunk waits for the next byte. */
export function fromNetworkAscii(): Transform {
  let pendingCr = false;
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      const out: number[] = [];
      for (const byte of chunk) {
        if (pendingCr && byte !== LF) out.push(CR);
        pendingCr = byte === CR;
        if (!pendingCr) out.push(byte);
      }
      done(null, Buffer.from(out));
    },
    flush(done: TransformCallback) {
      done(null, pendingCr ? Buffer.from([CR]) : null);
    },
  });
}
