/**
 * How a relay names itself to the cluster, pure: its id and the URLs it advertises. An id comes
 * from UNDERPASS_RELAY_ID, or is the same on every start of the relay on one host and tunnel
 * port (a restart takes its row back), or is random when the port is chosen by the system. A
 * URL comes from its variable, or from the listen address when that address names one host;
 * a wildcard address (0.0.0.0, ::) names none, and the relay then advertises nothing.
 */
import { createHash, randomBytes } from "node:crypto";

/** Ids as UNDERPASS_RELAY_ID may set them: they travel in URLs, labels and log lines. */
export const RELAY_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** A random relay id, for a relay whose port the system chose. */
export function randomRelayId(): string {
  return `rl_${randomBytes(6).toString("hex")}`;
}

/** The same id on every start on `hostname` with tunnel port `port`; random for port 0. */
export function defaultRelayId(hostname: string, port: number): string {
  if (port === 0) return randomRelayId();
  return `rl_${createHash("sha256").update(`${hostname}:${port}`).digest("hex").slice(0, 12)}`;
}

/** A URL to advertise, or why there is none. */
export type Advertised = { readonly url: string } | { readonly url: null; readonly why: string };

/** The wildcard addresses: a listener on one takes the port on every interface, and names no host. */
export function isWildcard(host: string): boolean {
  return host === "" || host === "0.0.0.0" || host === "::" || host === "[::]";
}

function hostPart(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/**
 * `explicit` when set; else `scheme://host:port{path}` of the address the listener is bound to,
 * unless that is a wildcard.
 */
export function advertisedUrl(
  explicit: string | undefined,
  bound: { readonly host: string; readonly port: number },
  scheme: string,
  path: string,
  variables: { readonly url: string; readonly listen: string },
): Advertised {
  if (explicit !== undefined) return { url: explicit };
  if (isWildcard(bound.host)) {
    return {
      url: null,
      why: `${variables.listen} is a wildcard address (${bound.host || "any"}), which names no host to reach; set ${variables.url}`,
    };
  }
  return { url: `${scheme}://${hostPart(bound.host)}:${bound.port}${path}` };
}
