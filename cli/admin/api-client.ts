/**
 * The admin CLI's HTTP client: the public admin API (the same one the console uses), bearer
 * token, JSON. A refusal by the API keeps its stable code, message and validation issues, so the
 * CLI prints what the server said; a relay that cannot be reached is told apart from one that
 * refused.
 */

/** What the API answered when it refused (4xx/5xx with an Underpass error body). */
export class ApiRefusal extends Error {
  readonly status: number;
  /** `UP_ERR_*`, or `HTTP_<status>` when the body carried no code. */
  readonly code: string;
  readonly issues: ReadonlyArray<{ path: string; message: string }>;
  readonly conflictsWith: string | undefined;

  constructor(
    status: number,
    code: string,
    message: string,
    issues: ReadonlyArray<{ path: string; message: string }> = [],
    conflictsWith?: string,
  ) {
    super(message);
    this.name = "ApiRefusal";
    this.status = status;
    this.code = code;
    this.issues = issues;
    this.conflictsWith = conflictsWith;
  }
}

/** The admin API could not be reached at all (refused, DNS, TLS, timeout). */
export class ApiUnreachable extends Error {
  constructor(url: string, cause: unknown) {
    const why = describeCause(cause);
    super(`cannot reach the admin API at ${url}: ${why}`, { cause });
    this.name = "ApiUnreachable";
  }
}

function describeCause(cause: unknown): string {
  if (cause instanceof Error) {
    const inner = (cause as Error & { cause?: unknown }).cause;
    if (inner instanceof Error) {
      const code = (inner as Error & { code?: unknown }).code;
      return typeof code === "string" ? `${code} (${inner.message})` : inner.message;
    }
    return cause.message;
  }
  return String(cause);
}

export interface AdminClientOptions {
  /** e.g. `http://127.0.0.1:8081`; a trailing slash is ignored. */
  readonly baseUrl: string;
  readonly token: string;
  /** Milliseconds before a request is given up (an FTP check may take a while). */
  readonly timeoutMs?: number;
  /** Hears the relays of the cluster that did not answer a merged view (Underpass-Missing-Relays). */
  readonly onMissingRelays?: (relayIds: readonly string[]) => void;
}

export type Query = Readonly<Record<string, string | number | boolean | undefined>>;

export class AdminClient {
  readonly #base: string;
  readonly #token: string;
  readonly #timeoutMs: number;
  readonly #onMissingRelays: ((relayIds: readonly string[]) => void) | undefined;

  constructor(o: AdminClientOptions) {
    this.#base = o.baseUrl.replace(/\/+$/, "");
    this.#token = o.token;
    this.#timeoutMs = o.timeoutMs ?? 60_000;
    this.#onMissingRelays = o.onMissingRelays;
  }

  get baseUrl(): string {
    return this.#base;
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>("GET", path, undefined, query);
  }

  post<T>(path: string, body?: unknown, query?: Query): Promise<T> {
    return this.request<T>("POST", path, body ?? {}, query);
  }

  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>("PATCH", path, body);
  }

  delete(path: string): Promise<void> {
    return this.request<void>("DELETE", path);
  }

  async request<T>(method: string, path: string, body?: unknown, query?: Query): Promise<T> {
    const url = new URL(this.#base + path);
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (err) {
      throw new ApiUnreachable(this.#base, err);
    }
    const text = await res.text();
    const missing = res.headers.get("underpass-missing-relays");
    if (missing) this.#onMissingRelays?.(missing.split(",").filter((id) => id !== ""));
    if (!res.ok) throw refusalOf(res.status, text);
    if (text.length === 0) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiRefusal(
        res.status,
        `HTTP_${res.status}`,
        `the admin API answered with non-JSON: ${text.slice(0, 200)}`,
      );
    }
  }
}

function refusalOf(status: number, text: string): ApiRefusal {
  try {
    const body = JSON.parse(text) as {
      error?: unknown;
      message?: unknown;
      issues?: unknown;
      conflictsWith?: unknown;
    };
    const code = typeof body.error === "string" ? body.error : `HTTP_${status}`;
    const message = typeof body.message === "string" ? body.message : text.slice(0, 200);
    const issues = Array.isArray(body.issues)
      ? body.issues.filter(
          (i): i is { path: string; message: string } =>
            typeof i === "object" &&
            i !== null &&
            typeof i.path === "string" &&
            typeof i.message === "string",
        )
      : [];
    const conflictsWith = typeof body.conflictsWith === "string" ? body.conflictsWith : undefined;
    return new ApiRefusal(status, code, message, issues, conflictsWith);
  } catch {
    return new ApiRefusal(status, `HTTP_${status}`, text.slice(0, 200) || `HTTP ${status}`);
  }
}
