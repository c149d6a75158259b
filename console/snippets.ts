/**
 * The ready-to-paste settings the console shows with a new secret: the `underpass agent`
 * command and env file for an agent (README "Run the agent on premises", "systemd"); curl, Java
 * system properties and a proxychains `[ProxyList]` line for a SOCKS client ("Point a client at
 * it"). Pure text; the secrets are the API's own (URL- and shell-safe base64url).
 */
import type { AgentCreated, ClientCreated, Endpoints } from "./api/types.js";

/** Where agents and clients reach the relay: the host the operator gives, the relay's ports. */
export interface RelayAddress {
  readonly host: string;
  readonly endpoints: Endpoints;
}

/** The default ports (DESIGN: tunnel 8443, SOCKS 1080), when the relay did not tell its own. */
export const DEFAULT_ENDPOINTS: Endpoints = { tunnelPort: 8443, tunnelTls: false, socksPort: 1080 };

function hostForUrl(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/** A word as a POSIX shell reads it: as is when it is plain, else in single quotes. */
export function shellWord(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'"'"'`)}'`;
}

export function relayUrl(r: RelayAddress): string {
  return `${r.endpoints.tunnelTls ? "wss" : "ws"}://${hostForUrl(r.host)}:${r.endpoints.tunnelPort}/tunnel`;
}

/** One line to run on premises. */
export function agentCommand(a: AgentCreated, r: RelayAddress): string {
  return `UNDERPASS_RELAY_URL=${shellWord(relayUrl(r))} UNDERPASS_AGENT_TOKEN=${shellWord(a.token)} underpass agent`;
}

/** `/etc/underpass/agent.env` for the systemd unit (mode 0600). */
export function agentEnvFile(a: AgentCreated, r: RelayAddress): string {
  return [
    `# /etc/underpass/agent.env (mode 0600): agent "${a.name}", location ${a.location}`,
    `UNDERPASS_RELAY_URL=${relayUrl(r)}`,
    `UNDERPASS_AGENT_TOKEN=${a.token}`,
    "# the internal targets this agent may dial (its local policy), e.g.:",
    "# UNDERPASS_ALLOW=10.0.0.5:21,30000-30010",
    ...(r.endpoints.tunnelTls
      ? ["# a self-signed relay certificate: UNDERPASS_CA=/etc/underpass/relay.crt"]
      : []),
    "",
  ].join("\n");
}

function socksHost(r: RelayAddress): string {
  return hostForUrl(r.host);
}

export function curlLine(c: ClientCreated, r: RelayAddress): string {
  const proxy = `socks5h://${encodeURIComponent(c.username)}:${encodeURIComponent(c.password)}@${socksHost(r)}:${r.endpoints.socksPort}`;
  // quoted even when plain, as the README writes it: a password may one day hold a shell character
  return `curl --proxy '${proxy.replaceAll("'", "%27")}' ftp://<virtual host>/`;
}

export function javaLine(c: ClientCreated, r: RelayAddress): string {
  return [
    `java -DsocksProxyHost=${shellWord(r.host)} -DsocksProxyPort=${r.endpoints.socksPort}`,
    `-Djava.net.socks.username=${shellWord(c.username)} -Djava.net.socks.password=${shellWord(c.password)}`,
    "-jar integration.jar",
  ].join(" \\\n     ");
}

/** proxychains4's `[ProxyList]` takes the relay as an IP address. */
export function proxychainsConfig(c: ClientCreated, r: RelayAddress): string {
  return [
    "strict_chain",
    "proxy_dns",
    "remote_dns_subnet 224",
    "[ProxyList]",
    `socks5 ${r.host} ${r.endpoints.socksPort} ${c.username} ${c.password}`,
    "",
  ].join("\n");
}
