/**
 * Live connections: client, source, virtual and internal target, mapping, bytes each way, age;
 * a filter and Kill. The list is fetched when a connection opens or closes and, while any is
 * open, on each traffic sample (every 2 s): the sample says bytes moved, and one request brings
 * every counter up to date. Ages tick in the page without asking the relay. Rows are updated in
 * place, so focus stays where it was.
 */
import type { Connection } from "../api/types.js";
import type { AppContext, PageView } from "../app-context.js";
import { confirmedButton } from "../ui/dialog.js";
import { coalesce, h } from "../ui/dom.js";
import { bytes, duration, target } from "../ui/format.js";
import { KeyedRows } from "../ui/keyed-rows.js";
import { pageHeader } from "../ui/parts.js";

/** Age cells are redrawn this often, in ms. */
const AGE_TICK_MS = 1000;
const HEADERS = [
  "Client",
  "Source",
  "Virtual target",
  "Internal target",
  "Mapping",
  "↑ up",
  "↓ down",
  "Age",
  "",
];

function matches(c: Connection, q: string): boolean {
  if (q === "") return true;
  const hay = [
    c.id,
    c.clientName ?? "",
    c.remoteAddress,
    target(c.virtualHost, c.virtualPort),
    target(c.internalHost, c.internalPort),
    c.mappingId,
    c.location,
    c.kind,
  ]
    .join(" ")
    .toLowerCase();
  return q
    .toLowerCase()
    .split(/\s+/)
    .every((word) => hay.includes(word));
}

export function connectionsPage(ctx: AppContext, params: URLSearchParams): PageView {
  const { api, live } = ctx;
  let connections: Connection[] = [];
  /** When the list was fetched (ms): an age is its `ageMs` plus the time since. */
  let fetchedAt = Date.now();
  const count = h("p", { class: "muted", role: "status", "data-testid": "connection-count" });
  const filter = h("input", {
    id: "connection-filter",
    type: "search",
    value: params.get("q") ?? "",
    placeholder: "client, address, host:port, mapping…",
    "aria-controls": "connections-table",
    oninput: () => render(),
  });
  const ageOf = (c: Connection): string => duration(c.ageMs + (Date.now() - fetchedAt));

  const makeRow = (first: Connection) => {
    let c = first;
    const up = h("td", { class: "num", "data-testid": "bytes-up" });
    const down = h("td", { class: "num", "data-testid": "bytes-down" });
    const age = h("td", { class: "num age" });
    const update = (next: Connection): void => {
      c = next;
      up.textContent = bytes(c.bytesUp);
      up.dataset["bytes"] = String(c.bytesUp);
      down.textContent = bytes(c.bytesDown);
      down.dataset["bytes"] = String(c.bytesDown);
      age.textContent = ageOf(c);
    };
    const tr = h(
      "tr",
      { "data-connection-id": c.id },
      h(
        "th",
        { scope: "row" },
        c.clientName ?? h("span", { class: "muted" }, c.kind === "check" ? "(check)" : "(anonymous)"),
        h("div", { class: "muted id" }, c.id),
      ),
      h("td", null, c.remoteAddress),
      h("td", null, h("code", null, target(c.virtualHost, c.virtualPort))),
      h("td", null, h("code", null, target(c.internalHost, c.internalPort))),
      h("td", null, h("a", { href: `#/mappings?focus=${encodeURIComponent(c.mappingId)}` }, c.mappingId)),
      up,
      down,
      age,
      h(
        "td",
        { class: "actions" },
        confirmedButton(
          {
            label: "Kill",
            title: `Kill connection ${c.id}?`,
            message: `${c.clientName ?? "The client"} (${c.remoteAddress}) to ${target(c.virtualHost, c.virtualPort)} is reset at once: the client sees the transfer break, never a clean end.`,
            confirmLabel: "Kill connection",
            failure: "Kill failed",
            notifyError: (m) => ctx.notify(m, "error"),
            kind: "small danger",
          },
          async () => {
            await api.killConnection(c.id);
            ctx.notify(`Connection ${c.id} killed.`);
            connectionList.run();
          },
        ),
      ),
    );
    update(c);
    return { tr, update, tick: () => (age.textContent = ageOf(c)) };
  };

  const tbody = h("tbody");
  const ticks = new Map<string, () => void>();
  const rows = new KeyedRows<Connection>(
    tbody,
    HEADERS.length,
    (c) => c.id,
    (c) => {
      const r = makeRow(c);
      ticks.set(c.id, r.tick);
      return r;
    },
  );

  const render = (): void => {
    const q = filter.value.trim();
    const shown = connections.filter((c) => matches(c, q));
    count.textContent =
      q === ""
        ? `${connections.length} live connection(s)`
        : `${shown.length} of ${connections.length} live connection(s) match`;
    rows.set(shown, q === "" ? "No live connection." : "No connection matches the filter.");
    for (const id of ticks.keys()) if (!shown.some((c) => c.id === id)) ticks.delete(id);
  };

  const connectionList = coalesce(async () => {
    connections = await api.connections();
    fetchedAt = Date.now();
    render();
  });
  const ticker = window.setInterval(() => {
    for (const tick of ticks.values()) tick();
  }, AGE_TICK_MS);

  const stops = [
    live.on("connection.opened", () => connectionList.run()),
    live.on("connection.closed", () => connectionList.run()),
    live.on("traffic", (t) => {
      if (connections.length > 0 || Object.values(t.locations).some((l) => l.connections > 0))
        connectionList.run();
    }),
  ];
  connectionList.run();

  return {
    element: h(
      "div",
      { class: "page connections" },
      pageHeader("Connections"),
      h("div", { class: "filter" }, h("label", { for: "connection-filter" }, "Filter"), filter, count),
      h(
        "div",
        {
          class: "table-wrap",
          tabindex: 0,
          role: "region",
          "aria-label": "Live connections",
          id: "connections-table",
        },
        h(
          "table",
          { "data-testid": "connections" },
          h("caption", { class: "visually-hidden" }, "Live connections"),
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              HEADERS.map((t) => h("th", { scope: "col" }, t)),
            ),
          ),
          tbody,
        ),
      ),
    ),
    dispose: () => {
      window.clearInterval(ticker);
      for (const stop of stops) stop();
    },
  };
}
