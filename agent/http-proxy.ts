/**
 * The tunnel's way out through a corporate HTTP CONNECT proxy (HTTPS_PROXY, basic auth in the
 * URL). The CONNECT itself is `https-proxy-agent`'s, the agent `ws`'s README names for this: it
 * speaks to `http://` and `https://` proxies, sends the URL's credentials as Proxy-Authorization
 * and, for a wss relay, runs TLS to the relay inside the CONNECT tunnel, end to end. What is
 * Underpass's own: which relay URLs skip the proxy (NO_PROXY, no-proxy.ts), a deadline on the
 * proxy's answer, and errors that name the proxy, never its credentials.
 */
import type { Agent } from "node:http";
import { ValidationError } from "../shared/errors.js";
import { bypassesProxy, type NoProxyList } from "./no-proxy.js";

export interface ProxySettings {
  /** The proxy, credentials included: log `describeProxy(url)` instead. */
  readonly url: URL;
  /** Relay URLs reached directly. */
  readonly noProxy: NoProxyList;
}

/** Port of an `http://` proxy URL that names none (README: HTTPS_PROXY). */
const DEFAULT_HTTP_PROXY_PORT = 8080;

/**
 * The proxy URL of HTTPS_PROXY (`variable` names it in errors). A URL without a scheme is
 * `http://`; only `http:` and `https:` proxies exist for CONNECT. The value never appears in
 * an error: it may hold a password.
 */
export function parseProxyUrl(value: string, variable: string): URL {
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(value.trim()) ? value.trim() : `http://${value.trim()}`;
  const invalid = (why: string): ValidationError =>
    new ValidationError(`${variable}: ${why}`, [{ path: variable, message: why }]);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid("is not a URL; expected http://[user:password@]host[:port]");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw invalid(`${url.protocol}// proxies are not supported; use an http:// or https:// CONNECT proxy`);
  if (url.hostname === "") throw invalid("names no host; expected http://[user:password@]host[:port]");
  // URL drops a port equal to the scheme's default, so look at the text for an explicit one
  const explicitPort = /^[a-z]+:\/\/(?:[^@/?#]*@)?(?:\[[^\]]*\]|[^:/?#]*):\d/i.test(text);
  if (url.protocol === "http:" && !explicitPort) url.port = String(DEFAULT_HTTP_PROXY_PORT);
  return url;
}

/** The proxy for logs and errors: scheme, host and port, never the credentials. */
export function describeProxy(url: URL): string {
  return `${url.protocol}//${url.host}`;
}

/** True when `relayUrl` (ws:// or wss://) goes through the proxy, false when NO_PROXY covers it. */
export function usesProxy(settings: ProxySettings, relayUrl: string): boolean {
  const relay = new URL(relayUrl);
  const port = Number(relay.port) || (relay.protocol === "wss:" ? 443 : 80);
  return !bypassesProxy(settings.noProxy, relay.hostname, port);
}

/**
 * The `agent` for one WebSocket connection to `relayUrl`, or undefined to connect directly (no
 * proxy, or NO_PROXY covers the relay). The proxy must answer the CONNECT within `timeoutMs`;
 * `ws`'s own handshake timeout only starts once the connection to the relay is there.
 */
export async function proxyAgentFor(
  settings: ProxySettings | undefined,
  relayUrl: string,
  timeoutMs: number,
): Promise<Agent | undefined> {
  if (settings === undefined || !usesProxy(settings, relayUrl)) return undefined;
  const { TunnelProxyAgent } = await import("./proxy-agent.js");
  return new TunnelProxyAgent(settings.url, timeoutMs);
}
