/**
 * The FTP check of a mapping (README "The FTP check"): a login (anonymous unless given) and a
 * directory, then each step the relay ran through the real path — connect, greeting, login,
 * EPSV, PASV, active mode — with ✓ or ✗, the server's reply, the code and the fix.
 */
import type { Api } from "../api/client.js";
import type { FtpCheckResult, FtpCheckStep, Mapping } from "../api/types.js";
import { openDialog } from "../ui/dialog.js";
import { h, replace } from "../ui/dom.js";
import { target } from "../ui/format.js";
import { field } from "../ui/parts.js";

function stepItem(s: FtpCheckStep): HTMLElement {
  return h(
    "li",
    { class: s.ok ? "step ok" : "step bad", "data-step": s.step, "data-ok": String(s.ok) },
    h("span", { class: "mark", "aria-hidden": "true" }, s.ok ? "✓" : "✗"),
    h("span", { class: "visually-hidden" }, s.ok ? "passed: " : "failed: "),
    h("strong", { class: "step-name" }, s.step),
    h(
      "div",
      { class: "step-body" },
      h("p", null, s.detail),
      s.reply ? h("p", { class: "muted" }, "reply: ", h("code", null, s.reply)) : null,
      s.announced
        ? h(
            "p",
            { class: "muted" },
            `announced ${target(s.announced.host ?? "(no address)", s.announced.port)}${s.coveredBy ? `, covered by ${s.coveredBy}` : ""}`,
          )
        : null,
      s.names && s.names.length > 0 ? h("p", { class: "muted" }, `listing: ${s.names.join(", ")}`) : null,
      s.code ? h("p", null, h("code", { class: "code" }, s.code)) : null,
      s.fix
        ? h("p", { class: s.ok ? "note" : "fix" }, h("strong", null, s.ok ? "note: " : "fix: "), s.fix)
        : null,
    ),
  );
}

export function renderFtpCheck(r: FtpCheckResult): HTMLElement {
  return h(
    "div",
    { class: "ftp-check", "data-testid": "ftp-check-result", "data-ok": String(r.ok) },
    h(
      "p",
      { class: r.ok ? "verdict ok" : "verdict bad" },
      r.ok ? "FTP check passed" : "FTP check failed",
      ` (${r.target})`,
    ),
    h("ol", { class: "steps" }, r.steps.map(stepItem)),
  );
}

export function openFtpCheck(api: Api, m: Mapping): void {
  const user = field("Username", "username", { value: "anonymous" });
  const pass = field("Password", "password", { type: "password", help: "Empty for anonymous." });
  const dir = field("Directory to list", "path", { value: "/" });
  const result = h("div", { "aria-live": "polite" });
  const run = h("button", { type: "submit", class: "primary" }, "Run FTP check");
  const form = h(
    "form",
    {
      class: "ftp-check-form",
      onsubmit: (e) => {
        e.preventDefault();
        run.disabled = true;
        replace(
          result,
          h(
            "p",
            { class: "muted", "aria-busy": "true" },
            "Checking through the relay, the tunnel and the agent…",
          ),
        );
        const login = {
          username: user.input.value || "anonymous",
          ...(pass.input.value === "" ? {} : { password: pass.input.value }),
          path: dir.input.value || "/",
        };
        api
          .ftpCheck(m.id, login)
          .then(
            (r) => replace(result, renderFtpCheck(r)),
            (err: unknown) =>
              replace(
                result,
                h(
                  "p",
                  { class: "form-error", role: "alert" },
                  err instanceof Error ? err.message : String(err),
                ),
              ),
          )
          .finally(() => {
            run.disabled = false;
          });
      },
    },
    h("div", { class: "fields" }, user.wrap, pass.wrap, dir.wrap),
    h("div", { class: "form-actions" }, run),
  );
  openDialog({
    title: `FTP check of ${target(m.virtualHost, m.virtualPort)}`,
    wide: true,
    body: [form, result],
  });
  run.focus();
}
