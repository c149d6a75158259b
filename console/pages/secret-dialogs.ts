/**
 * The dialogs that show a new secret, the only time it can be seen: an agent's token with the
 * `underpass agent` command and env file; a client's password with curl, Java and proxychains
 * settings. Closing the dialog drops the secret from the page.
 */
import type { AgentCreated, ClientCreated } from "../api/types.js";
import {
  agentCommand,
  agentEnvFile,
  curlLine,
  javaLine,
  proxychainsConfig,
  type RelayAddress,
} from "../snippets.js";
import { copyBlock } from "../ui/copy-block.js";
import { openDialog } from "../ui/dialog.js";
import { h } from "../ui/dom.js";

const ONCE = "Shown only now: the relay keeps nothing but its hash. Copy it before closing this dialog.";

export function showAgentSecret(a: AgentCreated, relay: RelayAddress, rotated: boolean): void {
  openDialog({
    title: rotated ? `New token for agent ${a.name}` : `Agent ${a.name} added`,
    wide: true,
    body: [
      h("p", { class: "once" }, ONCE),
      rotated ? h("p", null, "The old token stopped working; the agent's tunnels were closed.") : null,
      copyBlock("Token", a.token, "agent-token"),
      copyBlock("Run on premises", agentCommand(a, relay), "agent-command"),
      copyBlock(
        "Or as /etc/underpass/agent.env for the systemd unit",
        agentEnvFile(a, relay),
        "agent-env-file",
      ),
      h(
        "p",
        { class: "help" },
        `Location ${a.location}. Set UNDERPASS_ALLOW to the internal targets the agent may dial; the relay's address comes from the "Relay host" field.`,
      ),
    ],
  });
}

export function showClientSecret(c: ClientCreated, relay: RelayAddress, rotated: boolean): void {
  openDialog({
    title: rotated ? `New password for client ${c.name}` : `Client ${c.name} added`,
    wide: true,
    body: [
      h("p", { class: "once" }, ONCE),
      rotated ? h("p", null, "The old password stopped working; the client's connections were reset.") : null,
      h(
        "dl",
        { class: "credentials" },
        h("dt", null, "Username"),
        h("dd", null, h("code", { "data-testid": "client-username" }, c.username)),
      ),
      copyBlock("Password", c.password, "client-password"),
      copyBlock("curl (socks5h: the relay resolves the virtual host)", curlLine(c, relay), "client-curl"),
      copyBlock("Java system properties", javaLine(c, relay), "client-java"),
      copyBlock(
        "proxychains4 configuration ([ProxyList] takes the relay's IP address)",
        proxychainsConfig(c, relay),
        "client-proxychains",
      ),
      h(
        "p",
        { class: "help" },
        `Location ${c.location}: these credentials reach only this location's mappings.`,
      ),
    ],
  });
}
