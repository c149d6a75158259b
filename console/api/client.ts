/**
 * The admin API as the console calls it: same-origin fetch with the session cookie (the browser
 * sends it; the page never sees it), the session's CSRF token on every change, and every error
 * answer turned into an ApiError with the API's code, field issues and conflicting mapping.
 */
import type {
  Agent,
  AgentCreated,
  AuditFilter,
  AuditPage,
  CheckResult,
  Client,
  ClientCreated,
  Connection,
  ErrorBody,
  FtpCheckResult,
  Issue,
  Mapping,
  MappingInput,
  SessionInfo,
} from "./types.js";

/** Any request longer than this is given up, in ms (an FTP check runs several dials). */
const REQUEST_TIMEOUT_MS = 120_000;

export class ApiError extends Error {
  readonly status: number;
  /** `UP_ERR_*`, or `UP_CONSOLE_NETWORK` when the relay could not be reached. */
  readonly code: string;
  readonly issues: readonly Issue[];
  readonly conflictsWith: string | undefined;
  /** 429: seconds until the next attempt (Retry-After). */
  readonly retryAfterSeconds: number | undefined;

  constructor(status: number, body: ErrorBody, retryAfterSeconds?: number) {
    super(body.message);
    this.status = status;
    this.code = body.error;
    this.issues = body.issues ?? [];
    this.conflictsWith = body.conflictsWith;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

function isErrorBody(x: unknown): x is ErrorBody {
  return typeof x === "object" && x !== null && typeof (x as ErrorBody).error === "string";
}

export class Api {
  #session: SessionInfo | null = null;
  /** Called when an answer says the session is over (401 outside sign-in). */
  onSessionEnded: (message: string) => void = () => {};

  get session(): SessionInfo | null {
    return this.#session;
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (method !== "GET" && this.#session !== null)
      headers[this.#session.csrfHeader] = this.#session.csrfToken;
    let res: Response;
    try {
      res = await fetch(path, {
        method,
        headers,
        credentials: "same-origin",
        cache: "no-store",
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (err) {
      const message = `the relay did not answer (${err instanceof Error ? err.message : String(err)})`;
      throw new ApiError(0, { error: "UP_CONSOLE_NETWORK", message });
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text === "" ? undefined : JSON.parse(text);
    } catch {
      // not an answer of the API (a proxy's error page): the status says what happened
      parsed = undefined;
    }
    if (res.ok) return parsed as T;
    const errorBody: ErrorBody = isErrorBody(parsed)
      ? parsed
      : { error: "UP_ERR_INTERNAL", message: `HTTP ${res.status}` };
    const retry = Number(res.headers.get("retry-after"));
    const err = new ApiError(res.status, errorBody, Number.isFinite(retry) && retry > 0 ? retry : undefined);
    if (res.status === 401 && !path.startsWith("/v1/session")) {
      this.#session = null;
      this.onSessionEnded(err.message);
    }
    throw err;
  }

  // ---- the session ----------------------------------------------------------------------------

  async signIn(token: string): Promise<SessionInfo> {
    this.#session = await this.request<SessionInfo>("POST", "/v1/session", { token });
    return this.#session;
  }

  /** The session this browser already has (a reloaded page), or null. */
  async resume(): Promise<SessionInfo | null> {
    try {
      this.#session = await this.request<SessionInfo>("GET", "/v1/session");
      return this.#session;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return null;
      throw err;
    }
  }

  async signOut(): Promise<void> {
    try {
      await this.request<void>("DELETE", "/v1/session");
    } finally {
      this.#session = null;
    }
  }

  // ---- resources ------------------------------------------------------------------------------

  agents = (): Promise<Agent[]> => this.request("GET", "/v1/agents");
  addAgent = (name: string, location: string): Promise<AgentCreated> =>
    this.request("POST", "/v1/agents", { name, location });
  rotateAgent = (id: string): Promise<AgentCreated> =>
    this.request("POST", `/v1/agents/${encodeURIComponent(id)}/rotate`);
  deleteAgent = (id: string): Promise<void> => this.request("DELETE", `/v1/agents/${encodeURIComponent(id)}`);

  clients = (): Promise<Client[]> => this.request("GET", "/v1/clients");
  addClient = (name: string, location: string): Promise<ClientCreated> =>
    this.request("POST", "/v1/clients", { name, location });
  rotateClient = (id: string): Promise<ClientCreated> =>
    this.request("POST", `/v1/clients/${encodeURIComponent(id)}/rotate`);
  deleteClient = (id: string): Promise<void> =>
    this.request("DELETE", `/v1/clients/${encodeURIComponent(id)}`);

  mappings = (): Promise<Mapping[]> => this.request("GET", "/v1/mappings");
  addMapping = (m: MappingInput): Promise<Mapping> => this.request("POST", "/v1/mappings", m);
  patchMapping = (id: string, patch: Partial<MappingInput>): Promise<Mapping> =>
    this.request("PATCH", `/v1/mappings/${encodeURIComponent(id)}`, patch);
  deleteMapping = (id: string): Promise<void> =>
    this.request("DELETE", `/v1/mappings/${encodeURIComponent(id)}`);
  checkMapping = (id: string): Promise<CheckResult> =>
    this.request("POST", `/v1/mappings/${encodeURIComponent(id)}/check`);
  ftpCheck = (
    id: string,
    login: { username?: string; password?: string; path?: string },
  ): Promise<FtpCheckResult> =>
    this.request("POST", `/v1/mappings/${encodeURIComponent(id)}/ftp-check`, login);

  connections = (): Promise<Connection[]> => this.request("GET", "/v1/connections");
  killConnection = (id: string): Promise<void> =>
    this.request("DELETE", `/v1/connections/${encodeURIComponent(id)}`);

  audit(filter: AuditFilter): Promise<AuditPage> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filter)) if (v !== undefined && v !== "") q.set(k, String(v));
    return this.request("GET", `/v1/audit?${q}`);
  }
}
