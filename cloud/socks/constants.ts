/** SOCKS protocol version 5, RFC 1928, and username/password authentication, RFC 1929. */
export { SOCKS5_REPLY, type Socks5Reply } from "./reply.js";

/** VER field of every SOCKS5 message (RFC 1928 §3). */
export const SOCKS_VERSION = 0x05;

/** VER field of the username/password sub-negotiation (RFC 1929 §2). */
export const USERPASS_VERSION = 0x01;

/** METHOD values (RFC 1928 §3). */
export const SOCKS5_AUTH = {
  /** NO AUTHENTICATION REQUIRED */
  NO_AUTH: 0x00,
  /** GSSAPI */
  GSSAPI: 0x01,
  /** USERNAME/PASSWORD (RFC 1929) */
  USERNAME_PASSWORD: 0x02,
  /** NO ACCEPTABLE METHODS */
  NO_ACCEPTABLE: 0xff,
} as const;

/** CMD values (RFC 1928 §4). */
export const SOCKS5_CMD = {
  CONNECT: 0x01,
  BIND: 0x02,
  UDP_ASSOCIATE: 0x03,
} as const;
export type Socks5Command = (typeof SOCKS5_CMD)[keyof typeof SOCKS5_CMD];

/** ATYP values (RFC 1928 §4). */
export const SOCKS5_ATYP = {
  /** 4 bytes */
  IPV4: 0x01,
  /** 1 length byte + name */
  DOMAINNAME: 0x03,
  /** 16 bytes */
  IPV6: 0x04,
} as const;

/** STATUS of the username/password reply (RFC 1929 §2): 0x00 success, anything else failure. */
export const USERPASS_STATUS = {
  SUCCESS: 0x00,
  FAILURE: 0x01,
} as const;
