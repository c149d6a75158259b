/**
 * Overview: agents up and down per location, live connections, traffic now and over the last
 * 15 minutes, and the denials of the last hour with their reasons — each with a link to the page
 * that has the details. Lists are fetched once and refreshed only when a live event says they
 * changed; the traffic comes from the live samples alone.
 */
import type { Agent, AuditEvent, DenialData } from "../api/types.js";
import type { AppContext, PageView } from "../app-context.js";
import { HISTORY_MS } from "../traffic-history.js";
import { coalesce, h, replace } from "../ui/dom.js";
import { rate, target } from "../ui/format.js";
import { badge, pageHeader, table, timeAgo } from "../ui/parts.js";
import { trafficChart } from "../ui/traffic-chart.js";

/** How far back the denials go, in ms. */
const DENIALS_MS = 60 * 60 * 1000;
/** Denials listed at most. */
const DENIALS_SHOWN = 50;

interface Denial {
  readonly time: string;
  readonly client: string | null;
  readonly remote: string | null;
  readonly host: string;
  readonly port: number;
  readonly location: string;
  readonly nearest: readonly string[];
}

function fromAudit(e: AuditEvent): Denial {
  return {
    time: e.time,
    client: typeof e["client"] === "string" ? e["client"] : null,
    remote: null,
    host: String(e["host"] ?? ""),
    port: Number(e["port"] ?? 0),
    location: String(e["location"] ?? ""),
    nearest: Array.isArray(e["nearest"]) ? e["nearest"].map(String) : [],
  };
}

function fromLive(d: DenialData): Denial {
  const { clientName: client, remote, host, port, location, nearest } = d;
  return { time: new Date().toISOString(), client, remote, host, port, location, nearest };
}

/** Why a CONNECT was refused, in words (the relay refuses only what no mapping covers). */
function reason(d: Denial): string {
  const near = d.nearest.length > 0 ? `; nearest: ${d.nearest.join(", ")}` : "";
  return `no mapping of location ${d.location} covers ${target(d.host, d.port)}${near}`;
}

export function overviewPage(ctx: AppContext): PageView {
  const { api, live, traffic } = ctx;
  let agents: Agent[] = [];
  let denials: Denial[] = [];
  let connectionsNow: number | null = null;

  const cards = h("section", { class: "cards", "aria-label": "Summary" });
  const locations = h("section", { "aria-labelledby": "ov-locations" });
  const chart = h("div", { class: "chart-box" });
  const denialList = h("section", { "aria-labelledby": "ov-denials" });

  const since = (): string => new Date(Date.now() - DENIALS_MS).toISOString();
  const recentDenials = (): Denial[] => {
    const oldest = Date.now() - DENIALS_MS;
    return denials.filter((d) => Date.parse(d.time) >= oldest);
  };

  const card = (title: string, value: string, href: string, testId: string, detail?: HTMLElement | string) =>
    h(
      "a",
      { class: "card", href, "data-testid": testId },
      h("span", { class: "card-title" }, title),
      h("span", { class: "card-value" }, value),
      detail === undefined ? null : h("span", { class: "card-detail" }, detail),
    );

  const renderCards = (): void => {
    const up = agents.filter((a) => a.connected).length;
    const latest = traffic.latest;
    const conns = latest?.connections ?? connectionsNow ?? 0;
    const d = recentDenials();
    replace(
      cards,
      card("Agents up", `${up} / ${agents.length}`, "#/agents", "card-agents", `${agents.length - up} down`),
      card("Live connections", String(conns), "#/connections", "card-connections"),
      card(
        "Traffic now",
        latest === undefined ? "–" : `↓ ${rate(latest.downBps)}`,
        "#/connections",
        "card-traffic",
        latest === undefined ? "waiting for a sample" : `↑ ${rate(latest.upBps)}`,
      ),
      card(
        "Denials, last hour",
        String(d.length),
        `#/audit?event=socks.denied&since=${encodeURIComponent(since())}`,
        "card-denials",
      ),
    );
  };

  const renderLocations = (): void => {
    const by = new Map<string, Agent[]>();
    for (const a of agents) by.set(a.location, [...(by.get(a.location) ?? []), a]);
    const latest = traffic.latest;
    const rows = [...by]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([loc, list]) => {
        const up = list.filter((a) => a.connected).length;
        const t = latest?.locations[loc];
        return h(
          "tr",
          { "data-location": loc },
          h("th", { scope: "row" }, loc),
          h(
            "td",
            null,
            badge(`${up} up`, up > 0 ? "ok" : "bad"),
            " ",
            list.length - up > 0 ? badge(`${list.length - up} down`, "muted") : null,
          ),
          h(
            "td",
            null,
            list
              .map((a) => h("span", { class: a.connected ? "agent-up" : "agent-down" }, a.name))
              .flatMap((el, i) => (i === 0 ? [el] : [", ", el])),
          ),
          h("td", null, t === undefined ? "–" : `↓ ${rate(t.downBps)} ↑ ${rate(t.upBps)}`),
          h("td", null, t === undefined ? "0" : String(t.connections)),
        );
      });
    replace(
      locations,
      h("h2", { id: "ov-locations" }, "Agents by location"),
      table(
        "Agents by location",
        ["Location", "Status", "Agents", "Traffic", "Connections"],
        rows,
        "No agent yet: add one on the Agents page.",
        "locations",
      ),
    );
  };

  const renderChart = (): void => {
    // the box's inner width (padding 0.5rem each side); before layout, a sensible guess
    const width = chart.clientWidth > 0 ? chart.clientWidth - 16 : 640;
    replace(chart, trafficChart(traffic.samples, HISTORY_MS, width));
  };
  let lastWidth = 0;
  const resized = new ResizeObserver(() => {
    if (chart.clientWidth === lastWidth) return;
    lastWidth = chart.clientWidth;
    renderChart();
  });
  resized.observe(chart);

  const renderDenials = (): void => {
    const d = recentDenials().slice(0, DENIALS_SHOWN);
    replace(
      denialList,
      h("h2", { id: "ov-denials" }, "Denials in the last hour"),
      d.length === 0
        ? h("p", { class: "muted", "data-testid": "no-denials" }, "None: every request matched a mapping.")
        : h(
            "ul",
            { class: "denials", "data-testid": "denials" },
            d.map((x) =>
              h(
                "li",
                null,
                timeAgo(x.time),
                " ",
                h("strong", null, target(x.host, x.port)),
                ` refused for ${x.client ?? "an anonymous client"}${x.remote ? ` from ${x.remote}` : ""}: `,
                h("span", { class: "reason" }, reason(x)),
              ),
            ),
          ),
      h(
        "p",
        null,
        h(
          "a",
          { href: `#/audit?event=socks.denied&since=${encodeURIComponent(since())}` },
          "All denials in the audit trail",
        ),
      ),
    );
  };

  let denialsLoaded = false;
  const denialTrail = coalesce(async () => {
    const page = await api.audit({ event: "socks.denied", since: since(), limit: DENIALS_SHOWN });
    denials = page.events.map(fromAudit);
    denialsLoaded = true;
    renderCards();
    renderDenials();
  });

  const agentList = coalesce(async () => {
    agents = await api.agents();
    renderCards();
    renderLocations();
  });

  const stops = [
    live.on("agent.up", () => agentList.run()),
    live.on("agent.down", () => agentList.run()),
    live.on("config.changed", (c) => {
      if (c.event.startsWith("admin.agent.") || c.event === "admin.config.imported") agentList.run();
    }),
    live.on("denial", (d) => {
      if (d.command !== "connect") return;
      // before the trail has answered, the denial may or may not be in its answer: ask again
      if (!denialsLoaded) {
        denialTrail.run();
        return;
      }
      denials = [fromLive(d), ...denials];
      renderCards();
      renderDenials();
    }),
    traffic.onChange(() => {
      renderCards();
      renderLocations();
      renderChart();
    }),
  ];

  agentList.run();
  void api.connections().then((c) => {
    connectionsNow = c.length;
    renderCards();
  });
  denialTrail.run();
  renderCards();
  renderLocations();
  renderChart();
  renderDenials();

  const element = h(
    "div",
    { class: "page overview" },
    pageHeader("Overview"),
    cards,
    h(
      "section",
      { "aria-labelledby": "ov-traffic" },
      h("h2", { id: "ov-traffic" }, "Traffic, last 15 minutes"),
      h(
        "p",
        { class: "legend" },
        h("span", { class: "key down" }, "down (target → client)"),
        h("span", { class: "key up" }, "up (client → target)"),
      ),
      chart,
    ),
    locations,
    denialList,
  );
  return {
    element,
    dispose: () => {
      resized.disconnect();
      for (const stop of stops) stop();
    },
  };
}
