/** Small pieces every page uses: page headers, tables, badges, times, form fields. */
import { type Child, h, uid } from "./dom.js";
import { ago, when } from "./format.js";

export function pageHeader(title: string, ...extra: Child[]): HTMLElement {
  return h(
    "header",
    { class: "page-header" },
    h("h1", null, title),
    h("div", { class: "page-tools" }, extra),
  );
}

/** A table in a box that scrolls sideways on a narrow window; `empty` when there are no rows. */
export function table(
  caption: string,
  headers: readonly string[],
  rows: readonly HTMLTableRowElement[],
  empty: string,
  testId?: string,
): HTMLElement {
  return h(
    "div",
    { class: "table-wrap", tabindex: 0, role: "region", "aria-label": caption },
    h(
      "table",
      { "data-testid": testId },
      h("caption", { class: "visually-hidden" }, caption),
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          headers.map((t) => h("th", { scope: "col" }, t)),
        ),
      ),
      h(
        "tbody",
        null,
        rows.length > 0 ? rows : h("tr", { class: "empty" }, h("td", { colspan: headers.length }, empty)),
      ),
    ),
  );
}

export function badge(text: string, kind: "ok" | "bad" | "warn" | "muted"): HTMLElement {
  return h("span", { class: `badge ${kind}` }, text);
}

/** "3 min ago", the exact time on hover and to assistive technology. */
export function timeAgo(iso: string | null | undefined): HTMLElement {
  if (!iso) return h("span", { class: "muted" }, "never");
  return h("time", { datetime: iso, title: when(iso) }, ago(iso));
}

export interface Field {
  readonly wrap: HTMLElement;
  readonly input: HTMLInputElement | HTMLSelectElement;
  /** Shows the API's message for this field (empty clears it). */
  setError(message: string): void;
}

/** A labelled input with its own error line, tied together with aria-describedby. */
export function field(
  label: string,
  name: string,
  opts: {
    value?: string;
    placeholder?: string;
    required?: boolean;
    help?: string;
    options?: readonly string[];
    type?: string;
  } = {},
): Field {
  const id = uid(`f-${name}`);
  const errorId = `${id}-error`;
  const helpId = `${id}-help`;
  const describedBy = opts.help ? `${helpId} ${errorId}` : errorId;
  const input =
    opts.options === undefined
      ? h("input", {
          id,
          name,
          type: opts.type ?? "text",
          value: opts.value ?? "",
          placeholder: opts.placeholder,
          required: opts.required,
          autocomplete: "off",
          spellcheck: "false",
          "aria-describedby": describedBy,
        })
      : h(
          "select",
          { id, name, "aria-describedby": describedBy },
          opts.options.map((o) => h("option", { value: o, selected: o === opts.value }, o)),
        );
  const error = h("p", { id: errorId, class: "field-error", "data-field-error": name });
  const wrap = h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    input,
    opts.help ? h("p", { id: helpId, class: "help" }, opts.help) : null,
    error,
  );
  return {
    wrap,
    input,
    setError(message) {
      error.textContent = message;
      if (message === "") input.removeAttribute("aria-invalid");
      else input.setAttribute("aria-invalid", "true");
    },
  };
}

/** A button that runs `action`, disabled (and marked busy) until it settles. */
export function actionButton(
  label: string,
  action: () => Promise<void>,
  opts: { kind?: string; title?: string; testId?: string } = {},
): HTMLButtonElement {
  const button: HTMLButtonElement = h(
    "button",
    {
      type: "button",
      class: opts.kind ?? "",
      title: opts.title,
      "data-testid": opts.testId,
      onclick: () => {
        button.disabled = true;
        button.setAttribute("aria-busy", "true");
        action().finally(() => {
          button.disabled = false;
          button.removeAttribute("aria-busy");
        });
      },
    },
    label,
  );
  return button;
}
