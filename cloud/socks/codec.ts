/**
 * Pure SOCKS5 handshake parsing and reply encoding. Each parser takes the bytes received so
 * far and answers "need more", a value with the bytes it consumed, or an error.
 */
import { formatIp, IP_BYTES, ipFromBytes, parseIp } from "../../shared/net/ip.js";
import { SOCKS_VERSION, SOCKS5_ATYP, type Socks5Reply, USERPASS_VERSION } from "./constants.js";

export const NEED_MORE = Symbol("need more bytes");
export type NeedMore = typeof NEED_MORE;

export type Parsed<T> =
  | NeedMore
  | { readonly ok: true; readonly value: T; readonly consumed: number }
  | ParseFailure;

export interface ParseFailure {
  readonly ok: false;
  readonly message: string;
  /** Set when the request was well formed up to an unsupported address type. */
  readonly addressTypeUnsupported?: boolean;
}

export interface Greeting {
  readonly methods: readonly number[];
}

export interface Credentials {
  readonly username: string;
  readonly password: string;
}

export interface SocksRequest {
  readonly command: number;
  readonly addressType: "ipv4" | "domain" | "ipv6";
  /** Dotted IPv4, canonical IPv6 or the domain name as sent. */
  readonly host: string;
  readonly port: number;
}

const fail = (message: string, addressTypeUnsupported = false): ParseFailure => ({
  ok: false,
  message,
  addressTypeUnsupported,
});

/** VER | NMETHODS | METHODS (1 + 1 + n bytes). */
export function parseGreeting(b: Buffer): Parsed<Greeting> {
  if (b.length < 2) return NEED_MORE;
  if (b[0] !== SOCKS_VERSION) return fail(`version byte 0x${b[0]!.toString(16)} is not SOCKS5`);
  const n = b[1]!;
  if (n === 0) return fail("greeting offers no methods");
  if (b.length < 2 + n) return NEED_MORE;
  return { ok: true, value: { methods: [...b.subarray(2, 2 + n)] }, consumed: 2 + n };
}

/** VER | ULEN | UNAME | PLEN | PASSWD (RFC 1929). */
export function parseCredentials(b: Buffer): Parsed<Credentials> {
  if (b.length < 2) return NEED_MORE;
  if (b[0] !== USERPASS_VERSION) return fail(`username/password version 0x${b[0]!.toString(16)} is not 1`);
  const ulen = b[1]!;
  if (b.length < 2 + ulen + 1) return NEED_MORE;
  const plen = b[2 + ulen]!;
  const end = 3 + ulen + plen;
  if (b.length < end) return NEED_MORE;
  return {
    ok: true,
    value: { username: b.toString("utf8", 2, 2 + ulen), password: b.toString("utf8", 3 + ulen, end) },
    consumed: end,
  };
}

/** VER | CMD | RSV | ATYP | DST.ADDR | DST.PORT (RFC 1928 §4). */
export function parseRequest(b: Buffer): Parsed<SocksRequest> {
  if (b.length < 5) return NEED_MORE;
  if (b[0] !== SOCKS_VERSION) return fail(`version byte 0x${b[0]!.toString(16)} is not SOCKS5`);
  const command = b[1]!;
  const atyp = b[3]!;
  let host: string;
  let addressType: SocksRequest["addressType"];
  let at: number;
  switch (atyp) {
    case SOCKS5_ATYP.IPV4:
      // 4 header + 4 ip + 2 port
      if (b.length < 10) return NEED_MORE;
      host = formatIp(ipFromBytes(b.subarray(4, 4 + IP_BYTES[4])));
      addressType = "ipv4";
      at = 8;
      break;
    case SOCKS5_ATYP.DOMAINNAME: {
      // 4 header + 1 length + name + 2 port
      const len = b[4]!;
      if (len === 0) return fail("empty domain name");
      if (b.length < 5 + len + 2) return NEED_MORE;
      host = b.toString("latin1", 5, 5 + len);
      addressType = "domain";
      at = 5 + len;
      break;
    }
    case SOCKS5_ATYP.IPV6: {
      // 4 header + 16 ip + 2 port
      if (b.length < 22) return NEED_MORE;
      host = formatIp(ipFromBytes(b.subarray(4, 4 + IP_BYTES[6])));
      addressType = "ipv6";
      at = 20;
      break;
    }
    default:
      return fail(`address type 0x${atyp.toString(16)} is not supported`, true);
  }
  return { ok: true, value: { command, addressType, host, port: b.readUInt16BE(at) }, consumed: at + 2 };
}

/**
 * VER | REP | RSV | ATYP | BND.ADDR | BND.PORT, for an IPv4 or IPv6 literal (as written: an
 * IPv4-mapped IPv6 address goes out as IPv6, a zone id is dropped) or a domain name.
 */
export function encodeReply(reply: Socks5Reply, address = "0.0.0.0", port = 0): Buffer {
  const ip = parseIp(address);
  if (ip !== undefined) {
    // 4 header + 4 ip + 2 port, or 4 header + 16 ip + 2 port
    const b = Buffer.alloc(4 + ip.bytes.length + 2);
    b[0] = SOCKS_VERSION;
    b[1] = reply;
    b[3] = ip.family === 4 ? SOCKS5_ATYP.IPV4 : SOCKS5_ATYP.IPV6;
    b.set(ip.bytes, 4);
    b.writeUInt16BE(port, 4 + ip.bytes.length);
    return b;
  }
  const name = Buffer.from(address, "latin1").subarray(0, 255);
  // 4 header + 1 length + name + 2 port
  const b = Buffer.alloc(7 + name.length);
  b[0] = SOCKS_VERSION;
  b[1] = reply;
  b[3] = SOCKS5_ATYP.DOMAINNAME;
  b[4] = name.length;
  name.copy(b, 5);
  b.writeUInt16BE(port, 5 + name.length);
  return b;
}

/** RFC 1929 reply: VER | STATUS. */
export function encodeAuthReply(status: number): Buffer {
  return Buffer.from([USERPASS_VERSION, status]);
}

/** Method selection reply: VER | METHOD. */
export function encodeMethodReply(method: number): Buffer {
  return Buffer.from([SOCKS_VERSION, method]);
}
