/**
 * Reach the relay through an outbound HTTP CONNECT proxy (HTTPS_PROXY, basic auth in the URL),
 * as corporate networks require. The tunnel's TLS, when wss, runs inside the CONNECT tunnel,
 * end to end with the relay.
 */
import { request } from "node:http";
import type { Socket } from "node:net";
import { type ConnectionOptions, connect as tlsConnect } from "node:tls";

type Callback = (err: Error | null, socket?: Socket) => void;

/** A `createConnection` for `ws`/`http` that opens the connection through the proxy. */
export function proxyConnection(proxyUrl: string, relayUrl: string) {
  const proxy = new URL(proxyUrl);
  const target = new URL(relayUrl);
  const secure = target.protocol === "wss:";
  const port = Number(target.port) || (secure ? 443 : 80);
  const authority = `${target.hostname.includes(":") ? `[${target.hostname}]` : target.hostname}:${port}`;
  const headers: Record<string, string> = { host: authority };
  if (proxy.username) {
    const cred = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
    headers["proxy-authorization"] = `Basic ${Buffer.from(cred).toString("base64")}`;
  }
  return (options: ConnectionOptions, callback: Callback): undefined => {
    const req = request({
      host: proxy.hostname,
      port: Number(proxy.port) || 8080,
      method: "CONNECT",
      path: authority,
      headers,
    });
    req.once("connect", (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        callback(
          new Error(`proxy ${proxy.host} answered CONNECT with ${res.statusCode} ${res.statusMessage ?? ""}`),
        );
        return;
      }
      if (!secure) {
        callback(null, socket);
        return;
      }
      const tls = tlsConnect({ ...options, socket, servername: target.hostname });
      tls.once("secureConnect", () => callback(null, tls));
      tls.once("error", (err) => callback(err));
    });
    req.once("error", (err) => callback(new Error(`proxy ${proxy.host}: ${err.message}`)));
    req.end();
    return undefined;
  };
}
