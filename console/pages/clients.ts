/**
 * SOCKS clients: add (the password shown once with curl, Java and proxychains settings),
 * rotate, revoke, and when and from where each was last used. Refreshed when a live event says
 * clients changed or one of them connected.
 */
import type { Client } from "../api/types.js";
import type { AppContext, PageView } from "../app-context.js";
import { confirmedButton } from "../ui/dialog.js";
import { coalesce, h, replace } from "../ui/dom.js";
import { pageHeader, table, timeAgo } from "../ui/parts.js";
import { registerForm } from "./register-form.js";
import { showClientSecret } from "./secret-dialogs.js";

export function clientsPage(ctx: AppContext): PageView {
  const { api, live } = ctx;
  let clients: Client[] = [];
  const list = h("section", { "aria-label": "Clients" });
  const notifyError = (m: string): void => ctx.notify(m, "error");

  const form = registerForm(ctx, {
    label: "Add a SOCKS client",
    submitLabel: "Add client",
    namePlaceholder: "ERP integration",
    add: async (name, location) => {
      showClientSecret(await api.addClient(name, location), ctx.relayAddress(), false);
      clientList.run();
    },
  });

  const row = (c: Client): HTMLTableRowElement =>
    h(
      "tr",
      { "data-client-id": c.id },
      h("th", { scope: "row" }, c.name, h("div", { class: "muted id" }, c.id)),
      h("td", null, c.location),
      h("td", null, h("code", null, c.username)),
      h("td", { "data-testid": "client-last-used" }, timeAgo(c.lastUsedAt)),
      h("td", null, c.lastAddress ?? "–"),
      h(
        "td",
        { class: "actions" },
        confirmedButton(
          {
            label: "Rotate",
            title: `Rotate the password of ${c.name}?`,
            message:
              "A new password is issued and shown once; the old one stops at once and the client's live connections are reset.",
            confirmLabel: "Rotate password",
            failure: "Rotate failed",
            notifyError,
          },
          async () => showClientSecret(await api.rotateClient(c.id), ctx.relayAddress(), true),
        ),
        confirmedButton(
          {
            label: "Revoke",
            title: `Revoke client ${c.name}?`,
            message:
              "Its credentials stop working and its live connections are reset. This cannot be undone.",
            confirmLabel: "Revoke client",
            failure: "Revoke failed",
            notifyError,
            kind: "small danger",
          },
          async () => {
            await api.deleteClient(c.id);
            ctx.notify(`Client ${c.name} revoked.`);
            clientList.run();
          },
        ),
      ),
    );

  const clientList = coalesce(async () => {
    clients = await api.clients();
    replace(
      list,
      table(
        "SOCKS clients",
        ["Name", "Location", "Username", "Last used", "From", ""],
        clients.map(row),
        "No client yet: add one above.",
        "clients",
      ),
    );
  });

  const stops = [
    live.on("config.changed", (c) => {
      if (c.event.startsWith("admin.client.") || c.event === "admin.config.imported") clientList.run();
    }),
    // a client that has just authenticated has a new "last used" (written within seconds)
    live.on("connection.opened", () => clientList.run()),
  ];
  clientList.run();

  return {
    element: h("div", { class: "page clients" }, pageHeader("Clients"), form, list),
    dispose: () => {
      for (const stop of stops) stop();
    },
  };
}
