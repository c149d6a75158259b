/**
 * The signed-in page: a header with the navigation, the live stream's state, the session and
 * Sign out; the current page below it, chosen by the URL's fragment (`#/agents?…`), so links and
 * the browser's history work without the server knowing the pages.
 */
import type { Api } from "./api/client.js";
import { LiveEvents, type LiveStatus } from "./api/live.js";
import type { SessionInfo } from "./api/types.js";
import type { AppContext, PageFactory, PageView } from "./app-context.js";
import { agentsPage } from "./pages/agents.js";
import { auditPage } from "./pages/audit.js";
import { clientsPage } from "./pages/clients.js";
import { connectionsPage } from "./pages/connections.js";
import { mappingsPage } from "./pages/mappings.js";
import { overviewPage } from "./pages/overview.js";
import { DEFAULT_ENDPOINTS } from "./snippets.js";
import { TrafficHistory } from "./traffic-history.js";
import { h, replace } from "./ui/dom.js";

const PAGES: ReadonlyArray<{ readonly path: string; readonly title: string; readonly make: PageFactory }> = [
  { path: "overview", title: "Overview", make: overviewPage },
  { path: "agents", title: "Agents", make: agentsPage },
  { path: "clients", title: "Clients", make: clientsPage },
  { path: "mappings", title: "Mappings", make: mappingsPage },
  { path: "connections", title: "Connections", make: connectionsPage },
  { path: "audit", title: "Audit", make: auditPage },
];

/** The relay host as agents and clients see it; not a secret, so it may stay in this browser. */
const RELAY_HOST_KEY = "underpass.relayHost";

const LIVE_TEXT: Readonly<Record<LiveStatus, string>> = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  stopped: "not live",
};

export interface Shell {
  readonly element: HTMLElement;
  close(): void;
}

export function startShell(api: Api, session: SessionInfo, onSignedOut: (notice: string) => void): Shell {
  // the stream was refused for good: if the session is over (expired, signed out elsewhere), say so
  const live = new LiveEvents(async () => {
    const alive = (await api.resume()) !== null;
    if (!alive) onSignedOut("Your session ended (it expired or was signed out): sign in again.");
    return alive;
  });
  const traffic = new TrafficHistory(live);
  const status = h("div", {
    class: "status-area",
    role: "status",
    "aria-live": "polite",
    "data-testid": "status",
  });
  let statusTimer: number | undefined;
  const ctx: AppContext = {
    api,
    live,
    traffic,
    notify(message, kind = "info") {
      status.className = `status-area ${kind}`;
      status.textContent = message;
      window.clearTimeout(statusTimer);
      statusTimer = window.setTimeout(() => {
        status.textContent = "";
      }, 8000);
    },
    relayAddress: () => ({
      host: localStorage.getItem(RELAY_HOST_KEY) || location.hostname,
      endpoints: api.session?.endpoints ?? session.endpoints ?? DEFAULT_ENDPOINTS,
    }),
    setRelayHost(host) {
      if (host.trim() === "" || host.trim() === location.hostname) localStorage.removeItem(RELAY_HOST_KEY);
      else localStorage.setItem(RELAY_HOST_KEY, host.trim());
    },
  };

  const liveBadge = h("span", { class: "live-badge", "data-testid": "live-status" });
  const stopStatus = live.onStatus((s) => {
    liveBadge.className = `live-badge ${s}`;
    liveBadge.textContent = LIVE_TEXT[s];
  });
  const links = PAGES.map((p) => h("a", { href: `#/${p.path}`, "data-page": p.path }, p.title));
  const signOut = h("button", { type: "button", class: "sign-out", "data-testid": "sign-out" }, "Sign out");
  const main = h("main", { id: "main", tabindex: -1 });
  const element = h(
    "div",
    { class: "shell" },
    h(
      "a",
      {
        class: "skip-link",
        href: "#main",
        onclick: (e) => {
          e.preventDefault();
          main.focus();
        },
      },
      "Skip to content",
    ),
    h(
      "header",
      { class: "top-bar" },
      h("a", { class: "brand", href: "#/overview" }, "Underpass"),
      h(
        "nav",
        { "aria-label": "Pages" },
        h(
          "ul",
          null,
          links.map((a) => h("li", null, a)),
        ),
      ),
      h(
        "div",
        { class: "session" },
        liveBadge,
        h(
          "span",
          { class: "actor", title: `Session ${session.actor}; audit entries name it` },
          session.actor,
        ),
        signOut,
      ),
    ),
    status,
    main,
  );

  let current: PageView | null = null;
  const show = (): void => {
    const [path = "overview", query = ""] = location.hash.replace(/^#\/?/, "").split("?");
    const page = PAGES.find((p) => p.path === path) ?? PAGES[0]!;
    current?.dispose();
    current = page.make(ctx, new URLSearchParams(query));
    replace(main, current.element);
    document.title = `${page.title} · Underpass`;
    for (const a of links) {
      if (a.dataset["page"] === page.path) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
  };
  window.addEventListener("hashchange", show);

  const close = (): void => {
    window.removeEventListener("hashchange", show);
    current?.dispose();
    current = null;
    stopStatus();
    traffic.close();
    live.stop();
    window.clearTimeout(statusTimer);
  };
  signOut.addEventListener("click", () => {
    signOut.disabled = true;
    api.signOut().then(
      () => onSignedOut("Signed out."),
      (err: unknown) =>
        onSignedOut(
          `Signed out here; the relay answered: ${err instanceof Error ? err.message : String(err)}`,
        ),
    );
  });

  live.start();
  show();
  return { element, close };
}
