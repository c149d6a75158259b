/**
 * UNDERPASS_RELAY_URL: the relays the agent keeps tunnels to, one URL or several, comma-
 * separated (`wss://relay-a:8443/tunnel,wss://relay-b:8443/tunnel`). A `ws://` URL carries the
 * agent's token and every byte in the clear: it is accepted towards loopback (a relay on the
 * same host, a local TLS terminator), and elsewhere only with UNDERPASS_INSECURE_TUNNEL=1.
 */
import { ValidationError } from "../shared/errors.js";
import { unbracket } from "../shared/net/host.js";
import { isLoopback, parseIp } from "../shared/net/ip.js";

const RELAY_URL = /^wss?:\/\/[^/]+(\/.*)?$/;

/** The URLs of `value`, in order, each once; throws ValidationError naming `variable`. */
export function parseRelayUrls(value: string, variable: string): string[] {
  const urls: string[] = [];
  const bad: string[] = [];
  for (const entry of value.split(",")) {
    const text = entry.trim();
    if (text === "") continue;
    if (!RELAY_URL.test(text) || !parses(text)) bad.push(text);
    else if (!urls.includes(text)) urls.push(text);
  }
  if (bad.length > 0 || urls.length === 0) {
    const why =
      bad.length > 0
        ? `${bad.map((b) => `"${b}"`).join(", ")}: each URL must be ws://host:port/tunnel or wss://host:port/tunnel`
        : "names no URL (ws://host:port/tunnel or wss://host:port/tunnel, comma-separated)";
    throw new ValidationError(`${variable}: ${why}`, [{ path: variable, message: why }]);
  }
  return urls;
}

function parses(url: string): boolean {
  try {
    new URL(url);
    return true;
  } catch {
    return false;
  }
}

/** True for `wss://`. */
export function isTls(url: string): boolean {
  return url.startsWith("wss://");
}

/** True when `url` names this host: `localhost` (RFC 6761 §6.3), 127.0.0.0/8 or ::1. */
export function isLoopbackUrl(url: string): boolean {
  const host = unbracket(new URL(url).hostname).toLowerCase();
  if (host === "localhost" || host.endsWith(".localhost")) return true;
  const ip = parseIp(host);
  return ip !== undefined && isLoopback(ip);
}

/** The `ws://` URLs of `urls` that leave this host: plaintext across a network. */
export function plaintextRemote(urls: readonly string[]): string[] {
  return urls.filter((u) => !isTls(u) && !isLoopbackUrl(u));
}
