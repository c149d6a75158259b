/**
 * The one client all peers are measured with: a TCP connect, straight to the target or through
 * a SOCKS5 proxy (RFC 1928 CONNECT, RFC 1929 username/password when credentials are given),
 * one round trip per step. Resolves with the socket once the proxy reported success; bytes the
 * target sent right behind the reply are put back into the socket, not lost.
 */
import { connect, isIPv4, type Socket } from "node:net";

export interface SocksEndpoint {
  readonly host: string;
  readonly port: number;
  /** RFC 1929 credentials; without them the client offers "no authentication" only. */
  readonly username?: string;
  readonly password?: string;
}

export interface Destination {
  readonly host: string;
  readonly port: number;
}

/** RFC 1928 §3 and RFC 1929 bytes the client uses. */
const SOCKS = {
  VERSION: 0x05,
  NO_AUTH: 0x00,
  USERNAME_PASSWORD: 0x02,
  USERPASS_VERSION: 0x01,
  CONNECT: 0x01,
  ATYP_IPV4: 0x01,
  ATYP_DOMAIN: 0x03,
  ATYP_IPV6: 0x04,
  SUCCEEDED: 0x00,
} as const;

/** The CONNECT request: 4 header + address + 2 port. */
function connectRequest(dest: Destination): Buffer {
  if (isIPv4(dest.host)) {
    const b = Buffer.from([SOCKS.VERSION, SOCKS.CONNECT, 0x00, SOCKS.ATYP_IPV4, 0, 0, 0, 0, 0, 0]);
    dest.host.split(".").forEach((octet, i) => {
      b[4 + i] = Number(octet);
    });
    b.writeUInt16BE(dest.port, 8);
    return b;
  }
  const name = Buffer.from(dest.host, "ascii");
  const b = Buffer.alloc(4 + 1 + name.length + 2);
  b.set([SOCKS.VERSION, SOCKS.CONNECT, 0x00, SOCKS.ATYP_DOMAIN, name.length]);
  name.copy(b, 5);
  b.writeUInt16BE(dest.port, 5 + name.length);
  return b;
}

/** Length of a complete CONNECT reply at the start of `b`, or 0 when more bytes are needed. */
function replyLength(b: Buffer): number {
  if (b.length < 5) return 0;
  const atyp = b[3];
  const addr = atyp === SOCKS.ATYP_IPV4 ? 4 : atyp === SOCKS.ATYP_IPV6 ? 16 : 1 + b[4]!;
  const n = 4 + addr + 2;
  return b.length >= n ? n : 0;
}

type Step = "method" | "auth" | "reply";

/** The moments of a connect: the TCP connection up, and each SOCKS answer read. */
export type ConnectMark = "connected" | "method" | "auth" | "reply";

/**
 * Connect to `dest`, through `proxy` unless it is null. The socket has noDelay set and is
 * paused on return, with any early target bytes unshifted. `mark` hears each moment of the
 * exchange as it happens (the latency figure's steps).
 */
export function connectVia(
  proxy: SocksEndpoint | null,
  dest: Destination,
  timeoutMs = 30_000,
  mark: (m: ConnectMark) => void = () => {},
): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const hop = proxy ?? dest;
    const socket = connect({ host: hop.host, port: hop.port, noDelay: true, allowHalfOpen: true });
    const timer = setTimeout(() => fail(new Error(`connect via ${describe(proxy)} timed out`)), timeoutMs);
    let buf: Buffer = Buffer.alloc(0);
    let step: Step = "method";
    const fail = (err: Error): void => {
      clearTimeout(timer);
      socket.removeAllListeners("data");
      socket.destroy();
      reject(err);
    };
    const done = (rest: Buffer): void => {
      clearTimeout(timer);
      socket.off("error", fail);
      socket.removeAllListeners("data");
      socket.pause();
      if (rest.length > 0) socket.unshift(rest);
      resolve(socket);
    };
    socket.once("error", fail);
    socket.once("connect", () => {
      mark("connected");
      if (proxy === null) return done(Buffer.alloc(0));
      const method = proxy.username === undefined ? SOCKS.NO_AUTH : SOCKS.USERNAME_PASSWORD;
      socket.write(Buffer.from([SOCKS.VERSION, 1, method]));
    });
    socket.on("data", (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      if (step === "method") {
        if (buf.length < 2) return;
        mark("method");
        if (buf[1] === SOCKS.USERNAME_PASSWORD && proxy?.username !== undefined) {
          const u = Buffer.from(proxy.username);
          const p = Buffer.from(proxy.password ?? "");
          socket.write(
            Buffer.concat([Buffer.from([SOCKS.USERPASS_VERSION, u.length]), u, Buffer.from([p.length]), p]),
          );
          step = "auth";
        } else if (buf[1] === SOCKS.NO_AUTH) {
          socket.write(connectRequest(dest));
          step = "reply";
        } else {
          return fail(new Error(`${describe(proxy)} accepts no method we offer (0x${buf[1]!.toString(16)})`));
        }
        buf = buf.subarray(2);
      }
      if (step === "auth") {
        if (buf.length < 2) return;
        if (buf[1] !== 0x00) return fail(new Error(`${describe(proxy)} refused the credentials`));
        mark("auth");
        buf = buf.subarray(2);
        socket.write(connectRequest(dest));
        step = "reply";
      }
      if (step === "reply") {
        const n = replyLength(buf);
        if (n === 0) return;
        mark("reply");
        if (buf[1] !== SOCKS.SUCCEEDED) {
          return fail(
            new Error(
              `${describe(proxy)} answered CONNECT ${dest.host}:${dest.port} with 0x${buf[1]!.toString(16)}`,
            ),
          );
        }
        done(buf.subarray(n));
      }
    });
  });
}

function describe(proxy: SocksEndpoint | null): string {
  return proxy === null ? "direct" : `socks5 ${proxy.host}:${proxy.port}`;
}
