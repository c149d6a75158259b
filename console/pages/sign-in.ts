/**
 * Sign-in: the admin token, sent once to `POST /v1/session` and dropped from the page as soon
 * as the answer is in; the browser keeps only the HttpOnly session cookie. A 429 (too many
 * failed sign-ins from this address) disables the form for the Retry-After it gives.
 */
import { type Api, ApiError } from "../api/client.js";
import type { SessionInfo } from "../api/types.js";
import { h } from "../ui/dom.js";

export function signInPage(
  api: Api,
  notice: string | null,
  onSignedIn: (s: SessionInfo) => void,
): HTMLElement {
  const input = h("input", {
    id: "admin-token",
    name: "token",
    type: "password",
    autocomplete: "current-password",
    required: true,
    spellcheck: "false",
    "aria-describedby": "sign-in-help sign-in-error",
  });
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const error = h("p", {
    id: "sign-in-error",
    class: "form-error",
    role: "alert",
    "data-testid": "sign-in-error",
  });
  let timer: number | undefined;

  const wait = (seconds: number, message: string): void => {
    let left = seconds;
    button.disabled = true;
    const tick = (): void => {
      if (left <= 0) {
        window.clearInterval(timer);
        button.disabled = false;
        error.textContent = `${message} You may try again now.`;
        return;
      }
      error.textContent = `${message} Try again in ${left} s.`;
      left--;
    };
    tick();
    timer = window.setInterval(tick, 1000);
  };

  const form = h(
    "form",
    {
      class: "sign-in-form",
      "aria-labelledby": "sign-in-title",
      onsubmit: (e) => {
        e.preventDefault();
        const token = input.value.trim();
        if (token === "") return;
        error.textContent = "";
        button.disabled = true;
        api.signIn(token).then(
          (session) => {
            input.value = "";
            window.clearInterval(timer);
            onSignedIn(session);
          },
          (err: unknown) => {
            button.disabled = false;
            if (err instanceof ApiError && err.status === 429) {
              wait(err.retryAfterSeconds ?? 1, "Too many failed sign-ins from this address.");
            } else if (err instanceof ApiError && err.status === 401) {
              error.textContent = "Wrong admin token.";
            } else {
              error.textContent = err instanceof Error ? err.message : String(err);
            }
            input.select();
          },
        );
      },
    },
    h("h1", { id: "sign-in-title" }, "Underpass console"),
    notice === null ? null : h("p", { class: "notice", role: "status" }, notice),
    h("label", { for: "admin-token" }, "Admin token"),
    input,
    h(
      "p",
      { id: "sign-in-help", class: "help" },
      "The relay's UNDERPASS_ADMIN_TOKEN. It is exchanged for a session cookie and not kept in this browser.",
    ),
    error,
    h("div", { class: "form-actions" }, button),
  );
  const page = h("main", { class: "sign-in", id: "main" }, form);
  queueMicrotask(() => input.focus());
  return page;
}
