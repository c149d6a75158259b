/**
 * Agents: each one's status and since when, tunnels, version, source address and last seen,
 * and the recent disconnects from the audit trail; add (the token shown once with the command
 * to run it), rotate, revoke. The list follows the live `agent.up` / `agent.down` events.
 */
import type { Agent, AuditEvent } from "../api/types.js";
import type { AppContext, PageView } from "../app-context.js";
import { confirmedButton } from "../ui/dialog.js";
import { coalesce, h, replace } from "../ui/dom.js";
import { when } from "../ui/format.js";
import { badge, pageHeader, table, timeAgo } from "../ui/parts.js";
import { registerForm } from "./register-form.js";
import { showAgentSecret } from "./secret-dialogs.js";

/** Disconnects listed. */
const DISCONNECTS_SHOWN = 10;

export function agentsPage(ctx: AppContext): PageView {
  const { api, live } = ctx;
  let agents: Agent[] = [];
  let disconnects: readonly AuditEvent[] = [];
  const list = h("section", { "aria-label": "Agents" });
  const recent = h("section", { "aria-labelledby": "agents-disconnects" });
  const notifyError = (m: string): void => ctx.notify(m, "error");

  const form = registerForm(ctx, {
    label: "Add an agent",
    submitLabel: "Add agent",
    namePlaceholder: "plant-1 gateway",
    add: async (name, location) => {
      showAgentSecret(await api.addAgent(name, location), ctx.relayAddress(), false);
      agentList.run();
    },
  });

  const nameOf = (id: unknown): string => agents.find((a) => a.id === id)?.name ?? String(id ?? "");

  const row = (a: Agent): HTMLTableRowElement =>
    h(
      "tr",
      { "data-agent-id": a.id, "data-status": a.connected ? "up" : "down" },
      h("th", { scope: "row" }, a.name, h("div", { class: "muted id" }, a.id)),
      h("td", null, a.location),
      h(
        "td",
        { "data-testid": "agent-status" },
        a.connected ? badge("up", "ok") : badge("down", "bad"),
        a.connected || a.lastSeenAt
          ? [" since ", timeAgo(a.connected ? a.connectedAt : a.lastSeenAt)]
          : " never connected",
      ),
      h("td", { class: "num" }, String(a.tunnels)),
      h("td", null, a.version ?? "–"),
      h("td", null, a.remoteAddress ?? a.lastAddress ?? "–"),
      h("td", null, a.connected ? "now" : timeAgo(a.lastSeenAt)),
      h(
        "td",
        { class: "actions" },
        confirmedButton(
          {
            label: "Rotate",
            title: `Rotate the token of ${a.name}?`,
            message:
              "A new token is issued and shown once; the old one stops at once and the agent's tunnels close until it runs with the new one.",
            confirmLabel: "Rotate token",
            failure: "Rotate failed",
            notifyError,
          },
          async () => showAgentSecret(await api.rotateAgent(a.id), ctx.relayAddress(), true),
        ),
        confirmedButton(
          {
            label: "Revoke",
            title: `Revoke agent ${a.name}?`,
            message: "Its token stops working and its live tunnels close. This cannot be undone.",
            confirmLabel: "Revoke agent",
            failure: "Revoke failed",
            notifyError,
            kind: "small danger",
          },
          async () => {
            await api.deleteAgent(a.id);
            ctx.notify(`Agent ${a.name} revoked.`);
            agentList.run();
          },
        ),
      ),
    );

  const render = (): void => {
    replace(
      list,
      table(
        "Agents",
        ["Name", "Location", "Status", "Tunnels", "Version", "Source", "Last seen", ""],
        agents.map(row),
        "No agent yet: add one above.",
        "agents",
      ),
    );
    replace(
      recent,
      h("h2", { id: "agents-disconnects" }, "Recent disconnects"),
      disconnects.length === 0
        ? h("p", { class: "muted" }, "None.")
        : h(
            "ul",
            { class: "events", "data-testid": "disconnects" },
            disconnects.map((e) =>
              h(
                "li",
                null,
                h("time", { datetime: e.time }, when(e.time)),
                " ",
                h("strong", null, nameOf(e["agentId"])),
                ` (${String(e["location"] ?? "")}): ${String(e["reason"] ?? e.message)}`,
              ),
            ),
          ),
    );
  };

  const agentList = coalesce(async () => {
    agents = await api.agents();
    render();
  });
  const disconnectList = coalesce(async () => {
    disconnects = (await api.audit({ event: "agent.disconnected", limit: DISCONNECTS_SHOWN })).events;
    render();
  });

  const stops = [
    live.on("agent.up", () => agentList.run()),
    live.on("agent.down", () => {
      agentList.run();
      disconnectList.run();
    }),
    live.on("config.changed", (c) => {
      if (c.event.startsWith("admin.agent.") || c.event === "admin.config.imported") agentList.run();
    }),
  ];
  agentList.run();
  disconnectList.run();
  render();

  return {
    element: h("div", { class: "page agents" }, pageHeader("Agents"), form, list, recent),
    dispose: () => {
      for (const stop of stops) stop();
    },
  };
}
