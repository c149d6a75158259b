/**
 * A real browser for the console's tests: Debian's chromium (`.ci/run` installs it), driven by
 * playwright-core, which brings no browser of its own. Each `openBrowser()` launches its own
 * headless chromium (a fresh profile in a temp dir that playwright removes) with one context;
 * `close()` ends both. Uncaught page errors are collected so a test can insist on none.
 */
import { existsSync } from "node:fs";
import { mkdir, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import { REPO_ROOT } from "./processes.js";

/** Debian's chromium package. */
export const CHROMIUM_PATH = "/usr/bin/chromium";
/**
 * Where the console's screenshots go: `docs/` (README "Console" shows them) when
 * `UNDERPASS_SCREENSHOTS=docs`, so that refreshing them is a choice; else a scratch folder, so
 * that a test run leaves the work tree as it found it.
 */
export const DOCS_DIR =
  process.env["UNDERPASS_SCREENSHOTS"] === "docs"
    ? join(REPO_ROOT, "docs")
    : join(tmpdir(), "underpass-console-screenshots");
/** A screenshot larger than this, in bytes, does not belong in the repository. */
export const MAX_SCREENSHOT_BYTES = 200 * 1024;

/** Flags for a headless chromium in a container: no sandbox (root), no GPU, nothing phoned home. */
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

export interface BrowserOptions {
  /** `http://127.0.0.1:<admin port>`: what `page.goto("/")` opens. */
  readonly baseURL: string;
  /** CSS pixels; 1280×800 unless given. */
  readonly viewport?: { readonly width: number; readonly height: number };
  /** Accept the relay's self-signed admin certificate. */
  readonly ignoreHTTPSErrors?: boolean;
}

export interface BrowserUnderTest {
  readonly browser: Browser;
  readonly context: BrowserContext;
  readonly page: Page;
  /** Uncaught exceptions of the page so far. */
  readonly pageErrors: string[];
  close(): Promise<void>;
}

export async function openBrowser(o: BrowserOptions): Promise<BrowserUnderTest> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`${CHROMIUM_PATH} is missing: apt-get install chromium (.ci/run installs it)`);
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  try {
    const context = await browser.newContext({
      baseURL: o.baseURL,
      viewport: o.viewport ?? { width: 1280, height: 800 },
      deviceScaleFactor: 1,
      ignoreHTTPSErrors: o.ignoreHTTPSErrors ?? false,
      acceptDownloads: true,
      // times in the screenshots as the relay's logs give them
      timezoneId: "UTC",
    });
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (err) => pageErrors.push(err.message));
    return {
      browser,
      context,
      page,
      pageErrors,
      async close() {
        await context.close().catch(() => {});
        await browser.close();
      },
    };
  } catch (err) {
    await browser.close();
    throw err;
  }
}

/**
 * Saves what the page shows as `docs/<name>.png` and checks it stays small enough to commit.
 * The mouse is moved away first so that no hover state is captured.
 */
export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(DOCS_DIR, { recursive: true });
  const path = join(DOCS_DIR, `${name}.png`);
  await page.mouse.move(0, 0);
  await page.screenshot({ path, type: "png", animations: "disabled", caret: "hide" });
  const { size } = await stat(path);
  if (size > MAX_SCREENSHOT_BYTES) {
    throw new Error(
      `${path} is ${size} bytes, more than ${MAX_SCREENSHOT_BYTES}: show less, or a narrower window`,
    );
  }
  return path;
}

/** What an element shows, as text ("" when it has none). */
export async function textOf(l: Locator): Promise<string> {
  return (await l.textContent()) ?? "";
}

/** Opens the console, signs in with `token` through the form, and waits for the live stream. */
export async function signIn(page: Page, token: string, timeoutMs = 20_000): Promise<void> {
  await page.goto("/");
  await page.getByLabel("Admin token").fill(token);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByTestId("live-status").filter({ hasText: "live" }).waitFor({ timeout: timeoutMs });
}
