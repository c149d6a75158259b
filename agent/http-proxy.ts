/**
 * The tunnel's way out through a corporate HTTP CONNECT proxy (HTTPS_PROXY, basic auth in the
 * URL). The CONNECT itself is `https-proxy-agent`'s, the agent `ws`'s README names for this: it
 * speaks to `http://` and `https://` proxies, sends the URL's credentials as Proxy-Authorization
 * and, for a wss relay, runs TLS to the relay inside the CONNECT tunnel, end to end. What is
 * Underpass's own: which relay URLs skip the proxy (NO_PROXY, no-proxy.ts), a deadline on the
 * proxy's answer, and errors that name the proxy, never its credentials.
 */
import type { Agent, ClientRequest } from "node:http";
import type { Socket } from "node:net";
import { HttpsProxyAgent } from "https-proxy-agent";
import { AuthError, HostUnreachableError, ValidationError } from "../shared/errors.js";
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
export function proxyAgentFor(
  settings: ProxySettings | undefined,
  relayUrl: string,
  timeoutMs: number,
): Agent | undefined {
  if (settings === undefined || !usesProxy(settings, relayUrl)) return undefined;
  return new TunnelProxyAgent(settings.url, timeoutMs);
}

/** The CONNECT's answer as https-proxy-agent reports it in its `proxyConnect` event. */
interface ConnectAnswer {
  readonly statusCode: number;
  readonly statusText: string;
}

/**
 * One connection's proxy agent: https-proxy-agent with a deadline (an abort of the socket to
 * the proxy) and coded errors. A refused CONNECT rejects instead of handing `ws` the proxy's
 * answer, which `ws` would report as the relay's.
 */
class TunnelProxyAgent extends HttpsProxyAgent<string> {
  readonly #timeoutMs: number;
  readonly #abort: AbortController;
  readonly #name: string;

  constructor(url: URL, timeoutMs: number) {
    const abort = new AbortController();
    // net.connect and tls.connect destroy their socket when the signal aborts
    super(url, { signal: abort.signal });
    this.#abort = abort;
    this.#timeoutMs = timeoutMs;
    this.#name = describeProxy(url);
  }

  override async connect(req: ClientRequest, opts: Parameters<HttpsProxyAgent<string>["connect"]>[1]) {
    const target = `${opts.host}:${opts.port}`;
    let answer: ConnectAnswer | null = null;
    req.once("proxyConnect", (a: ConnectAnswer) => {
      answer = a;
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.#abort.abort();
    }, this.#timeoutMs);
    // `ws` gave up on the request (terminate(), the agent stopping): drop the proxy socket now
    const onAbort = (): void => this.#abort.abort();
    req.once("abort", onAbort);
    let socket: Socket;
    try {
      socket = await super.connect(req, opts);
    } catch (err) {
      const why = timedOut
        ? `did not answer CONNECT ${target} within ${this.#timeoutMs} ms`
        : err instanceof Error
          ? err.message
          : String(err);
      throw new HostUnreachableError(`proxy ${this.#name}: ${why}`, { cause: err });
    } finally {
      clearTimeout(timer);
      req.removeListener("abort", onAbort);
    }
    const a = answer as ConnectAnswer | null;
    if (a === null || a.statusCode !== 200) {
      socket.destroy();
      const status = a === null ? "no answer" : `${a.statusCode} ${a.statusText}`.trim();
      // 407 when credentials are missing; some proxies (tinyproxy) answer wrong ones with 401
      if (a?.statusCode === 407 || a?.statusCode === 401) {
        throw new AuthError(
          `proxy ${this.#name} refused CONNECT ${target}: ${status} (check the user and password in HTTPS_PROXY)`,
        );
      }
      throw new HostUnreachableError(`proxy ${this.#name} refused CONNECT ${target}: ${status}`);
    }
    return socket;
  }
}
