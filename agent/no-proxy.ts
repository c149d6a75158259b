/**
 * NO_PROXY: the destinations the agent reaches directly although HTTPS_PROXY is set. The
 * variable has no standard; this reads it the way curl and Go's net/http agree on:
 * - entries separated by commas, blanks around them ignored, case-insensitive;
 * - `*` alone: nothing goes through the proxy;
 * - a host name, `corp.example`, `.corp.example` or `*.corp.example`: that name and every name
 *   below it (`relay.corp.example`), never a name that merely ends alike (`evilcorp.example`);
 * - an IP literal, `10.1.2.3`, `::1` or `[::1]`: that address, compared as an address (no DNS:
 *   the relay URL's host as written); a CIDR block, `10.0.0.0/8` or `fd00::/8`, as Go reads it;
 * - `:port` after a name, an IPv4 address or a bracketed IPv6 address: only that port.
 * An entry that is none of these is left out, and the caller is told which, so that a NO_PROXY
 * written for other programs on the host never stops the agent.
 */
import { BlockList, isIP } from "node:net";
import { normalizeHost } from "../shared/net/host.js";

/** One entry of NO_PROXY. `port` null: any port. */
export type NoProxyRule =
  | { readonly kind: "all" }
  | { readonly kind: "domain"; readonly domain: string; readonly port: number | null }
  | { readonly kind: "address"; readonly addresses: BlockList; readonly port: number | null };

export interface NoProxyList {
  readonly rules: readonly NoProxyRule[];
  /** Entries that are not understood, as written. */
  readonly ignored: readonly string[];
}

/** A DNS name as NO_PROXY entries spell them: labels of letters, digits, `-` and `_`. */
const NAME = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;

export function parseNoProxy(value: string): NoProxyList {
  const rules: NoProxyRule[] = [];
  const ignored: string[] = [];
  for (const raw of value.split(",")) {
    const entry = raw.trim();
    if (entry === "") continue;
    const rule = parseEntry(entry.toLowerCase());
    if (rule === null) ignored.push(entry);
    else rules.push(rule);
  }
  return { rules, ignored };
}

/** True when a connection to `host:port` goes direct. `host` as in a URL (brackets allowed). */
export function bypassesProxy(list: NoProxyList, host: string, port: number): boolean {
  const h = normalizeHost(host);
  const family = isIP(h);
  return list.rules.some((rule) => {
    switch (rule.kind) {
      case "all":
        return true;
      case "domain":
        return (
          family === 0 &&
          (rule.port === null || rule.port === port) &&
          (h === rule.domain || h.endsWith(`.${rule.domain}`))
        );
      case "address":
        return (
          family !== 0 &&
          (rule.port === null || rule.port === port) &&
          rule.addresses.check(h, family === 6 ? "ipv6" : "ipv4")
        );
      default: {
        const never: never = rule;
        return never;
      }
    }
  });
}

function parseEntry(entry: string): NoProxyRule | null {
  if (entry === "*") return { kind: "all" };
  // [v6] or [v6]:port
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracketed) return isIP(bracketed[1]!) === 6 ? address(bracketed[1]!, bracketed[2]) : null;
  if (entry.includes("/")) return cidr(entry);
  // a bare IPv6 address holds colons of its own: no port after it without brackets
  if (isIP(entry) === 6) return address(entry, undefined);
  const m = /^([^:]+)(?::(\d+))?$/.exec(entry);
  if (!m) return null;
  const host = m[1]!;
  if (isIP(host) === 4) return address(host, m[2]);
  const domain = host.replace(/^\*?\./, "").replace(/\.$/, "");
  if (!NAME.test(domain)) return null;
  const port = parsePort(m[2]);
  return port === undefined ? null : { kind: "domain", domain, port };
}

/** `undefined` for a port that is not 1-65535; null for none. */
function parsePort(text: string | undefined): number | null | undefined {
  if (text === undefined) return null;
  const port = Number(text);
  return Number.isInteger(port) && port >= 1 && port <= 65535 ? port : undefined;
}

function address(ip: string, portText: string | undefined): NoProxyRule | null {
  const port = parsePort(portText);
  if (port === undefined) return null;
  const addresses = new BlockList();
  addresses.addAddress(ip, isIP(ip) === 6 ? "ipv6" : "ipv4");
  return { kind: "address", addresses, port };
}

function cidr(entry: string): NoProxyRule | null {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(entry);
  const family = m ? isIP(m[1]!) : 0;
  const prefix = m ? Number(m[2]) : -1;
  if (family === 0 || prefix > (family === 6 ? 128 : 32)) return null;
  const addresses = new BlockList();
  addresses.addSubnet(m![1]!, prefix, family === 6 ? "ipv6" : "ipv4");
  return { kind: "address", addresses, port: null };
}
