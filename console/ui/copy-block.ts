/**
 * A labelled block of text to copy (a command, an env file, a secret) with a Copy button. The
 * Clipboard API needs a secure context (HTTPS or localhost); elsewhere the text is selected
 * for Ctrl+C instead.
 */
import { h, uid } from "./dom.js";

export function copyBlock(label: string, text: string, testId?: string): HTMLElement {
  const id = uid("copy");
  const pre = h("pre", { id, class: "copy-text", tabindex: 0, "data-testid": testId }, text);
  const status = h("span", { class: "copy-status", role: "status" });
  const button = h(
    "button",
    {
      type: "button",
      class: "small",
      "aria-describedby": id,
      onclick: () => {
        void copy(text, pre).then((how) => {
          status.textContent = how === "copied" ? "Copied" : "Selected: press Ctrl+C";
        });
      },
    },
    "Copy",
  );
  return h(
    "div",
    { class: "copy-block" },
    h("div", { class: "copy-head" }, h("span", { class: "copy-label" }, label), status, button),
    pre,
  );
}

async function copy(text: string, pre: HTMLElement): Promise<"copied" | "selected"> {
  try {
    await navigator.clipboard.writeText(text);
    return "copied";
  } catch {
    const range = document.createRange();
    range.selectNodeContents(pre);
    const sel = window.getSelection();
    sel?.removeAllRanges();
    sel?.addRange(range);
    pre.focus();
    return "selected";
  }
}
