/**
 * The audit trail: filtered by time, event, client, agent and mapping, paged by cursor (newest
 * first), and the shown events exported as JSON lines — a file the page makes itself. The
 * filters live in the URL fragment, so a link (the overview's denials) opens a filtered view.
 * The first page follows the live events that add to the trail; an older page stays put.
 */
import type { AuditEvent, AuditFilter } from "../api/types.js";
import type { AppContext, PageView } from "../app-context.js";
import { coalesce, h, replace } from "../ui/dom.js";
import { fromLocalInput, toLocalInput, when } from "../ui/format.js";
import { field, pageHeader, table } from "../ui/parts.js";

/** Event names the filter suggests (README "Audit trail"); any other name may be typed. */
const KNOWN_EVENTS = [
  "socks.denied",
  "socks.bind-denied",
  "socks.auth-failed",
  "admin.auth-failed",
  "limit.hit",
  "ftp.bounce-refused",
  "agent.connected",
  "agent.disconnected",
  "agent.rejected",
  "admin.agent.created",
  "admin.agent.rotated",
  "admin.agent.deleted",
  "admin.client.created",
  "admin.client.rotated",
  "admin.client.deleted",
  "admin.mapping.created",
  "admin.mapping.changed",
  "admin.mapping.deleted",
  "admin.connection.killed",
  "admin.config.exported",
  "admin.config.imported",
  "console.signed-in",
  "console.signed-out",
  "console.sign-in-failed",
] as const;

const PAGE_SIZES = ["50", "100", "500"] as const;

/** Fields shown as details: the ones that say who and what; `before`/`after` go to the export. */
const DETAIL_KEYS = [
  "client",
  "agent",
  "actor",
  "remote",
  "host",
  "port",
  "location",
  "mappingId",
  "agentId",
  "reason",
  "username",
];

function details(e: AuditEvent): string {
  return DETAIL_KEYS.filter((k) => e[k] !== undefined && e[k] !== null && e[k] !== "")
    .map((k) => `${k}=${typeof e[k] === "object" ? JSON.stringify(e[k]) : String(e[k])}`)
    .join(" ");
}

/** The shown events as JSON lines (one object a line, RFC 8259 each), downloaded by the browser. */
function download(events: readonly AuditEvent[]): void {
  const text = events.map((e) => JSON.stringify(e)).join("\n") + (events.length > 0 ? "\n" : "");
  const url = URL.createObjectURL(new Blob([text], { type: "application/x-ndjson" }));
  const a = h("a", {
    href: url,
    download: `underpass-audit-${new Date().toISOString().replaceAll(":", "-")}.jsonl`,
  });
  document.body.append(a);
  a.click();
  a.remove();
  // the download has its own reference by now; free ours after the click has been handled
  window.setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export function auditPage(ctx: AppContext, params: URLSearchParams): PageView {
  const { api, live } = ctx;
  const since = field("Since", "since", {
    type: "datetime-local",
    value: params.get("since") ? toLocalInput(params.get("since")!) : "",
  });
  const until = field("Until", "until", {
    type: "datetime-local",
    value: params.get("until") ? toLocalInput(params.get("until")!) : "",
  });
  const event = field("Event", "event", { value: params.get("event") ?? "", placeholder: "any" });
  event.input.setAttribute("list", "audit-events");
  const client = field("Client", "client", { value: params.get("client") ?? "", placeholder: "id or name" });
  const agent = field("Agent", "agent", { value: params.get("agent") ?? "", placeholder: "id or name" });
  const mapping = field("Mapping", "mapping", { value: params.get("mapping") ?? "", placeholder: "mp_…" });
  const limit = field("Per page", "limit", { options: PAGE_SIZES, value: params.get("limit") ?? "100" });
  const list = h("section", { "aria-label": "Audit events" });
  const pager = h("nav", { class: "pager", "aria-label": "Audit pages" });
  const errorLine = h("p", { class: "form-error", role: "alert" });

  let events: readonly AuditEvent[] = [];
  /** Cursors of the pages before this one (for Newer); the current page's cursor; the next's. */
  const back: Array<string | undefined> = [];
  let cursor: string | undefined;
  let nextCursor: string | null = null;

  const filter = (): AuditFilter => ({
    since: fromLocalInput(since.input.value),
    until: fromLocalInput(until.input.value),
    event: event.input.value.trim() || undefined,
    client: client.input.value.trim() || undefined,
    agent: agent.input.value.trim() || undefined,
    mapping: mapping.input.value.trim() || undefined,
    limit: Number(limit.input.value),
  });

  const render = (): void => {
    const rows = events.map((e) =>
      h(
        "tr",
        { "data-seq": e.seq, "data-event": e.event },
        h("td", null, h("time", { datetime: e.time }, when(e.time))),
        h("td", null, h("code", null, e.event)),
        h("td", { class: "details" }, details(e)),
        h("td", null, e.message),
      ),
    );
    replace(
      list,
      table(
        "Audit events, newest first",
        ["Time", "Event", "Details", "Message"],
        rows,
        "No event matches.",
        "audit",
      ),
    );
    const newer = h(
      "button",
      { type: "button", disabled: back.length === 0, onclick: () => go(back.pop(), false) },
      "← Newer",
    );
    const older = h(
      "button",
      { type: "button", disabled: nextCursor === null, onclick: () => go(nextCursor ?? undefined, true) },
      "Older →",
    );
    const exportButton = h(
      "button",
      {
        type: "button",
        disabled: events.length === 0,
        onclick: () => download(events),
        "data-testid": "audit-export",
      },
      `Export ${events.length} shown (JSON lines)`,
    );
    replace(pager, newer, older, exportButton);
  };

  const load = async (): Promise<void> => {
    try {
      const page = await api.audit({ ...filter(), cursor });
      events = page.events;
      nextCursor = page.nextCursor;
      errorLine.textContent = "";
    } catch (err) {
      errorLine.textContent = err instanceof Error ? err.message : String(err);
    }
    render();
  };
  const reload = coalesce(load);

  const go = (to: string | undefined, forward: boolean): void => {
    if (forward) back.push(cursor);
    cursor = to;
    reload.run();
  };

  const form = h(
    "form",
    {
      class: "filters",
      "aria-label": "Filter the audit trail",
      onsubmit: (e) => {
        e.preventDefault();
        back.length = 0;
        cursor = undefined;
        reload.run();
      },
    },
    h(
      "datalist",
      { id: "audit-events" },
      KNOWN_EVENTS.map((n) => h("option", { value: n })),
    ),
    h(
      "div",
      { class: "fields" },
      since.wrap,
      until.wrap,
      event.wrap,
      client.wrap,
      agent.wrap,
      mapping.wrap,
      limit.wrap,
    ),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "primary" }, "Apply filters")),
  );

  /** A live event that adds to the trail refreshes the first page (only it shows the newest). */
  const onTrailGrew = (): void => {
    if (cursor === undefined && until.input.value === "") reload.run();
  };
  const stops = [
    live.on("denial", onTrailGrew),
    live.on("auth.failed", onTrailGrew),
    live.on("agent.up", onTrailGrew),
    live.on("agent.down", onTrailGrew),
    live.on("config.changed", onTrailGrew),
  ];
  reload.run();

  return {
    element: h("div", { class: "page audit" }, pageHeader("Audit"), form, errorLine, list, pager),
    dispose: () => {
      for (const stop of stops) stop();
    },
  };
}
