/**
 * The console's entry point: resume this browser's session if it has one, else show sign-in;
 * swap between the two as the session starts and ends (sign-out, expiry, a 401 from any call).
 */
import { Api } from "./api/client.js";
import type { SessionInfo } from "./api/types.js";
import { signInPage } from "./pages/sign-in.js";
import { type Shell, startShell } from "./shell.js";
import { h, replace } from "./ui/dom.js";

const root = document.getElementById("app");
if (root === null) throw new Error("the page has no #app element");
const app: HTMLElement = root;
const api = new Api();
let shell: Shell | null = null;

function showSignIn(notice: string | null): void {
  shell?.close();
  shell = null;
  document.title = "Sign in · Underpass";
  replace(app, signInPage(api, notice, showShell));
}

function showShell(session: SessionInfo): void {
  shell?.close();
  shell = startShell(api, session, (notice) => showSignIn(notice));
  replace(app, shell.element);
}

api.onSessionEnded = (message) => {
  if (shell !== null) showSignIn(`Your session ended: ${message}`);
};

api.resume().then(
  (session) => (session === null ? showSignIn(null) : showShell(session)),
  (err: unknown) =>
    replace(
      app,
      h(
        "main",
        { class: "sign-in" },
        h("p", { class: "form-error", role: "alert" }, `The relay did not answer: ${String(err)}`),
      ),
    ),
);
