/** Relay counters in the Prometheus text exposition format (version 0.0.4). */

import type { RelayEvents } from "../events.js";
import type { LiveConnections } from "../socks/connections.js";
import type { AgentRegistry } from "../tunnel/registry.js";

export class RelayMetrics {
  /** SOCKS requests answered, by reply code. */
  readonly socksReplies = new Map<number, number>();
  tunnelsAccepted = 0;
  tunnelsRejected = 0;
  closedBytesUp = 0;
  closedBytesDown = 0;
  readonly #registry: AgentRegistry;
  readonly #connections: LiveConnections;

  constructor(registry: AgentRegistry, connections: LiveConnections, events: RelayEvents) {
    this.#registry = registry;
    this.#connections = connections;
    events.tunnelConnected.subscribe(() => this.tunnelsAccepted++);
    events.tunnelRejected.subscribe(() => this.tunnelsRejected++);
    events.socksOpened.subscribe((m) => {
      if (m.grant !== "ftp-active-data") this.countReply(0);
    });
    events.socksRefused.subscribe((m) => this.countReply(m.reply));
    events.socksClosed.subscribe((m) => {
      this.closedBytesUp += m.bytesUp;
      this.closedBytesDown += m.bytesDown;
    });
  }

  countReply(code: number): void {
    this.socksReplies.set(code, (this.socksReplies.get(code) ?? 0) + 1);
  }

  render(): string {
    const tunnels = this.#registry.all();
    const live = this.#connections.liveBytes();
    const lines = [
      "# HELP underpass_tunnels Live agent tunnels.",
      "# TYPE underpass_tunnels gauge",
      `underpass_tunnels ${tunnels.length}`,
      "# HELP underpass_tunnels_accepted_total Tunnels that passed the hello.",
      "# TYPE underpass_tunnels_accepted_total counter",
      `underpass_tunnels_accepted_total ${this.tunnelsAccepted}`,
      "# HELP underpass_tunnels_rejected_total Tunnels refused at the hello (version, token, protocol).",
      "# TYPE underpass_tunnels_rejected_total counter",
      `underpass_tunnels_rejected_total ${this.tunnelsRejected}`,
      "# HELP underpass_streams Open streams over all tunnels.",
      "# TYPE underpass_streams gauge",
      `underpass_streams ${tunnels.reduce((n, t) => n + t.session.streamCount, 0)}`,
      "# HELP underpass_connections Live SOCKS connections.",
      "# TYPE underpass_connections gauge",
      `underpass_connections ${this.#connections.size}`,
      "# HELP underpass_bytes_total Bytes carried, by direction (up: client to premises).",
      "# TYPE underpass_bytes_total counter",
      `underpass_bytes_total{direction="up"} ${this.closedBytesUp + live.up}`,
      `underpass_bytes_total{direction="down"} ${this.closedBytesDown + live.down}`,
      "# HELP underpass_socks_replies_total SOCKS5 replies sent, by reply code.",
      "# TYPE underpass_socks_replies_total counter",
    ];
    for (const [code, n] of [...this.socksReplies].sort((a, b) => a[0] - b[0])) {
      lines.push(`underpass_socks_replies_total{reply="${code}"} ${n}`);
    }
    return `${lines.join("\n")}\n`;
  }
}
