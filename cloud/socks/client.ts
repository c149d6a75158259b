/**
 * A SOCKS5 client for the relay's own checks (RFC 1928 CONNECT, RFC 1929 username/password):
 * a diagnosis that goes through the SOCKS endpoint takes exactly the path a client's flow takes.
 * A refusal comes back as the coded error the reply stands for.
 */
import { connect, type Socket } from "node:net";
import {
  ConnectionRefusedError,
  HostUnreachableError,
  NoAgentError,
  NotAllowedError,
  SocksHandshakeError,
  UnderpassError,
} from "../../shared/errors.js";
import { NEED_MORE, type Parsed, parseRequest } from "./codec.js";
import {
  SOCKS_VERSION,
  SOCKS5_ATYP,
  SOCKS5_AUTH,
  SOCKS5_CMD,
  SOCKS5_REPLY,
  USERPASS_STATUS,
  USERPASS_VERSION,
} from "./constants.js";

export interface SocksClientOptions {
  /** The SOCKS endpoint. */
  readonly proxyHost: string;
  readonly proxyPort: number;
  readonly username: string;
  readonly password: string;
  /** The destination, by name (ATYP 0x03), as a client of a mapping asks for it. */
  readonly host: string;
  readonly port: number;
  /** Bound on the whole handshake, in ms (the relay's own dial timeout is inside it). */
  readonly timeoutMs: number;
}

export interface SocksConnected {
  /** Paused: bytes the target sent first wait until the caller listens and resumes it. */
  readonly socket: Socket;
  /** BND.ADDR / BND.PORT of the reply. */
  readonly boundAddress: string;
  readonly boundPort: number;
}

/** The coded error a failed CONNECT reply stands for (cloud/socks/reply.ts, read backwards). */
export function errorForReply(reply: number, what: string): UnderpassError {
  const message = `${what}: SOCKS reply 0x${reply.toString(16).padStart(2, "0")}`;
  switch (reply) {
    case SOCKS5_REPLY.NOT_ALLOWED:
      return new NotAllowedError(message);
    case SOCKS5_REPLY.NETWORK_UNREACHABLE:
      return new NoAgentError(message);
    case SOCKS5_REPLY.HOST_UNREACHABLE:
      return new HostUnreachableError(message);
    case SOCKS5_REPLY.CONNECTION_REFUSED:
      return new ConnectionRefusedError(message);
    default:
      return new UnderpassError(message);
  }
}

/** Bytes off the socket until a parser has what it needs, bounded by the handshake's deadline. */
class Reader {
  #buf = Buffer.alloc(0);
  #waiter: (() => void) | null = null;
  #failure: Error | null = null;

  constructor(socket: Socket) {
    socket.on("data", (b: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, b]);
      this.#waiter?.();
    });
    const fail = (err: Error): void => {
      this.#failure = err;
      this.#waiter?.();
    };
    socket.on("error", fail);
    socket.on("close", () => fail(new SocksHandshakeError("the SOCKS endpoint closed the connection")));
  }

  /** Waits until `parse` returns something other than NEED_MORE, and consumes what it read. */
  async until<T>(parse: (b: Buffer) => Parsed<T>): Promise<T> {
    for (;;) {
      const r = parse(this.#buf);
      if (r !== NEED_MORE) {
        if (!r.ok) throw new SocksHandshakeError(`SOCKS endpoint: ${r.message}`);
        this.#buf = this.#buf.subarray(r.consumed);
        return r.value;
      }
      if (this.#failure) throw this.#failure;
      await new Promise<void>((resolve) => {
        this.#waiter = resolve;
      });
      this.#waiter = null;
    }
  }

  /** Bytes read past the reply (a target that speaks first, like FTP's 220). */
  rest(): Buffer {
    return this.#buf;
  }
}

/** The two bytes of a method or RFC 1929 status reply: VER | METHOD or VER | STATUS. */
function twoBytes(b: Buffer): Parsed<number> {
  return b.length < 2 ? NEED_MORE : { ok: true, value: b[1]!, consumed: 2 };
}

/** CONNECT through a SOCKS5 endpoint; resolves once the relay replied success. */
export async function socksConnect(o: SocksClientOptions): Promise<SocksConnected> {
  const socket = connect({ host: o.proxyHost, port: o.proxyPort, noDelay: true });
  const timer = setTimeout(
    () =>
      socket.destroy(
        new HostUnreachableError(`no SOCKS reply for ${o.host}:${o.port} within ${o.timeoutMs} ms`),
      ),
    o.timeoutMs,
  );
  const reader = new Reader(socket);
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    // greeting: VER, NMETHODS, METHODS (RFC 1928 §3)
    socket.write(Buffer.from([SOCKS_VERSION, 1, SOCKS5_AUTH.USERNAME_PASSWORD]));
    if ((await reader.until(twoBytes)) !== SOCKS5_AUTH.USERNAME_PASSWORD) {
      throw new SocksHandshakeError("the SOCKS endpoint refused username/password");
    }
    // RFC 1929 §2: VER, ULEN, UNAME, PLEN, PASSWD
    const user = Buffer.from(o.username, "utf8");
    const pass = Buffer.from(o.password, "utf8");
    socket.write(
      Buffer.concat([Buffer.from([USERPASS_VERSION, user.length]), user, Buffer.from([pass.length]), pass]),
    );
    if ((await reader.until(twoBytes)) !== USERPASS_STATUS.SUCCESS) {
      throw new SocksHandshakeError("the SOCKS endpoint refused the credentials");
    }
    // request: VER, CMD, RSV, ATYP 0x03, length, name, port (RFC 1928 §4)
    const name = Buffer.from(o.host, "utf8");
    const req = Buffer.alloc(4 + 1 + name.length + 2);
    req.set([SOCKS_VERSION, SOCKS5_CMD.CONNECT, 0x00, SOCKS5_ATYP.DOMAINNAME, name.length]);
    name.copy(req, 5);
    req.writeUInt16BE(o.port, 5 + name.length);
    socket.write(req);
    // the reply has the request's layout, REP in CMD's place (RFC 1928 §6)
    const reply = await reader.until(parseRequest);
    if (reply.command !== SOCKS5_REPLY.SUCCEEDED) throw errorForReply(reply.command, `${o.host}:${o.port}`);
    clearTimeout(timer);
    // back to paused mode: bytes that arrive before the caller listens wait in the buffer
    socket.pause();
    socket.removeAllListeners("data");
    socket.removeAllListeners("close");
    socket.removeAllListeners("error");
    const rest = reader.rest();
    if (rest.length > 0) socket.unshift(rest);
    return { socket, boundAddress: reply.host, boundPort: reply.port };
  } catch (err) {
    clearTimeout(timer);
    socket.destroy();
    throw err instanceof UnderpassError
      ? err
      : new HostUnreachableError(`SOCKS endpoint: ${String(err)}`, { cause: err });
  }
}
