/** What every page is given: the API, the live events, the traffic history and the shell's services. */
import type { Api } from "./api/client.js";
import type { LiveEvents } from "./api/live.js";
import type { RelayAddress } from "./snippets.js";
import type { TrafficHistory } from "./traffic-history.js";

export interface AppContext {
  readonly api: Api;
  readonly live: LiveEvents;
  readonly traffic: TrafficHistory;
  /** A short message in the shell's status area (announced to screen readers). */
  notify(message: string, kind?: "info" | "error"): void;
  /** Where agents and SOCKS clients reach the relay, for the commands the pages show. */
  relayAddress(): RelayAddress;
  /** The relay's host name as agents and clients see it (kept in this browser). */
  setRelayHost(host: string): void;
}

/** A page on screen; `dispose()` stops its live subscriptions and timers. */
export interface PageView {
  readonly element: HTMLElement;
  dispose(): void;
}

export type PageFactory = (ctx: AppContext, params: URLSearchParams) => PageView;
