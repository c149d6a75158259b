/**
 * The proxy agent of one tunnel connection through a corporate HTTP CONNECT proxy
 * (http-proxy.ts says which connections take one). Loaded only by an agent that has a proxy:
 * https-proxy-agent and what it brings cost 1.6 MiB of heap to every other agent.
 */
import type { ClientRequest } from "node:http";
import type { Socket } from "node:net";
import { HttpsProxyAgent } from "https-proxy-agent";
import { AuthError, HostUnreachableError } from "../shared/errors.js";
import { describeProxy } from "./http-proxy.js";

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
export class TunnelProxyAgent extends HttpsProxyAgent<string> {
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
