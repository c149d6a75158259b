/**
 * Pure SOCKS5 handshake parsing and reply encoding. Each parser takes the bytes received so
 * far and answers "need more", a value with the bytes it consumed, or an error.
 */
import { isIPv4, isIPv6 } from "node:net";
import { canonicalIPv6 } from "../../shared/net/host.js";
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
      host = `${b[4]}.${b[5]}.${b[6]}.${b[7]}`;
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
      const groups: string[] = [];
      for (let i = 0; i < 8; i++) groups.push(b.readUInt16BE(4 + i * 2).toString(16));
      host = canonicalIPv6(groups.join(":"));
      addressType = "ipv6";
      at = 20;
      break;
    }
    default:
      return fail(`address type 0x${atyp.toString(16)} is not supported`, true);
  }
  return { ok: true, value: { command, addressType, host, port: b.readUInt16BE(at) }, consumed: at + 2 };
}

/** VER | REP | RSV | ATYP | BND.ADDR | BND.PORT, for an IPv4 or IPv6 literal or a domain name. */
export function encodeReply(reply: Socks5Reply, address = "0.0.0.0", port = 0): Buffer {
  if (isIPv4(address)) {
    // 4 header + 4 ip + 2 port
    const b = Buffer.alloc(10);
    b[0] = SOCKS_VERSION;
    b[1] = reply;
    b[3] = SOCKS5_ATYP.IPV4;
    const parts = address.split(".");
    for (let i = 0; i < 4; i++) b[4 + i] = Number(parts[i]);
    b.writeUInt16BE(port, 8);
    return b;
  }
  if (isIPv6(address)) {
    // 4 header + 16 ip + 2 port
    const b = Buffer.alloc(22);
    b[0] = SOCKS_VERSION;
    b[1] = reply;
    b[3] = SOCKS5_ATYP.IPV6;
    const full = expandIPv6(address);
    for (let i = 0; i < 8; i++) b.writeUInt16BE(full[i]!, 4 + i * 2);
    b.writeUInt16BE(port, 20);
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

/** The eight 16-bit groups of an IPv6 literal (IPv4-suffixed forms included). */
export function expandIPv6(address: string): number[] {
  let a = address;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (v4) {
    const p = v4[1]!.split(".").map(Number);
    a =
      a.slice(0, -v4[1]!.length) +
      `${((p[0]! << 8) | p[1]!).toString(16)}:${((p[2]! << 8) | p[3]!).toString(16)}`;
  }
  const [head = "", tail] = a.split("::");
  const h = head ? head.split(":") : [];
  const t = tail !== undefined && tail ? tail.split(":") : [];
  const zeros = tail !== undefined ? 8 - h.length - t.length : 0;
  return [...h, ...Array<string>(zeros).fill("0"), ...t].map((g) => Number.parseInt(g, 16));
}

/** RFC 1929 reply: VER | STATUS. */
export function encodeAuthReply(status: number): Buffer {
  return Buffer.from([USERPASS_VERSION, status]);
}

/** Method selection reply: VER | METHOD. */
export function encodeMethodReply(method: number): Buffer {
  return Buffer.from([SOCKS_VERSION, method]);
}
