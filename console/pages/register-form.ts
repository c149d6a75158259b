/**
 * The form that registers an agent or a SOCKS client: a name, a location, and the relay's host
 * as agents and clients reach it (for the commands shown with the new secret). The API's field
 * issues are shown next to their field.
 */
import { ApiError } from "../api/client.js";
import type { AppContext } from "../app-context.js";
import { h } from "../ui/dom.js";
import { type Field, field } from "../ui/parts.js";

export function relayHostField(ctx: AppContext): Field {
  const f = field("Relay host", "relayHost", {
    value: ctx.relayAddress().host,
    help: "The relay's name or address as agents and clients reach it; used in the commands shown.",
  });
  f.input.addEventListener("change", () => ctx.setRelayHost(f.input.value));
  return f;
}

export interface RegisterFormOptions {
  readonly label: string;
  readonly submitLabel: string;
  readonly namePlaceholder: string;
  /** Registers; throws the API's error to have it shown. */
  readonly add: (name: string, location: string) => Promise<void>;
}

export function registerForm(ctx: AppContext, o: RegisterFormOptions): HTMLFormElement {
  const name = field("Name", "name", { required: true, placeholder: o.namePlaceholder });
  const loc = field("Location", "location", { value: "default", required: true });
  const relayHost = relayHostField(ctx);
  const formError = h("p", { class: "form-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary" }, o.submitLabel);
  return h(
    "form",
    {
      class: "inline-form",
      "aria-label": o.label,
      onsubmit: (e) => {
        e.preventDefault();
        ctx.setRelayHost(relayHost.input.value);
        for (const f of [name, loc]) f.setError("");
        formError.textContent = "";
        submit.disabled = true;
        o.add(name.input.value, loc.input.value)
          .then(
            () => {
              name.input.value = "";
            },
            (err: unknown) => {
              if (err instanceof ApiError && err.issues.length > 0) {
                for (const i of err.issues) (i.path === "location" ? loc : name).setError(i.message);
              } else formError.textContent = err instanceof Error ? err.message : String(err);
            },
          )
          .finally(() => {
            submit.disabled = false;
          });
      },
    },
    h("div", { class: "fields" }, name.wrap, loc.wrap, relayHost.wrap),
    formError,
    h("div", { class: "form-actions" }, submit),
  );
}
