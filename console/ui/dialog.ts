/**
 * Modal dialogs on the native `<dialog>`: `showModal()` makes the rest of the page inert and
 * closes on Escape by itself; focus goes to the dialog's first control and back to whatever had
 * it before once the dialog closes.
 */
import { type Child, h, uid } from "./dom.js";

export interface DialogOptions {
  readonly title: string;
  readonly body: Child;
  /** Buttons at the bottom, right to left in reading order; a Close button when none. */
  readonly actions?: readonly HTMLButtonElement[];
  /** A wider dialog (copyable commands, FTP check steps). */
  readonly wide?: boolean;
  readonly onClose?: () => void;
}

export interface OpenDialog {
  readonly element: HTMLDialogElement;
  close(): void;
}

export function openDialog(o: DialogOptions): OpenDialog {
  const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  const titleId = uid("dialog-title");
  const closeButton = h("button", { type: "button", class: "icon-button", "aria-label": "Close" }, "×");
  const actions = o.actions ?? [h("button", { type: "button", class: "primary" }, "Close")];
  const dialog = h(
    "dialog",
    { class: o.wide ? "dialog wide" : "dialog", "aria-labelledby": titleId },
    h("header", { class: "dialog-header" }, h("h2", { id: titleId }, o.title), closeButton),
    h("div", { class: "dialog-body" }, o.body),
    h("footer", { class: "dialog-actions" }, actions),
  );
  const close = (): void => {
    if (dialog.open) dialog.close();
  };
  closeButton.addEventListener("click", close);
  if (o.actions === undefined) actions[0]?.addEventListener("click", close);
  dialog.addEventListener("close", () => {
    dialog.remove();
    o.onClose?.();
    opener?.focus();
  });
  // a click on the backdrop (outside the dialog's box) closes it too
  dialog.addEventListener("click", (e) => {
    if (e.target === dialog) close();
  });
  document.body.append(dialog);
  dialog.showModal();
  return { element: dialog, close };
}

/** Asks before a change that cannot be undone; resolves true when confirmed. */
export function confirmAction(title: string, message: Child, confirmLabel: string): Promise<boolean> {
  return new Promise((resolve) => {
    let confirmed = false;
    const cancel = h("button", { type: "button" }, "Cancel");
    const ok = h("button", { type: "button", class: "danger" }, confirmLabel);
    const d = openDialog({
      title,
      body: h("p", null, message),
      actions: [cancel, ok],
      onClose: () => resolve(confirmed),
    });
    cancel.addEventListener("click", () => d.close());
    ok.addEventListener("click", () => {
      confirmed = true;
      d.close();
    });
    cancel.focus();
  });
}

export interface ConfirmedActionOptions {
  readonly label: string;
  readonly title: string;
  readonly message: string;
  readonly confirmLabel: string;
  /** What failed, before the API's message: "Revoke failed". */
  readonly failure: string;
  readonly notifyError: (message: string) => void;
  readonly kind?: string;
}

/** A button that asks first, then runs `run`; a failure is reported, not thrown. */
export function confirmedButton(o: ConfirmedActionOptions, run: () => Promise<void>): HTMLButtonElement {
  const button: HTMLButtonElement = h(
    "button",
    {
      type: "button",
      class: o.kind ?? "small",
      onclick: () => {
        // the modal dialog holds the page while it asks; the button is busy only while it runs
        void confirmAction(o.title, o.message, o.confirmLabel).then(async (ok) => {
          if (!ok) return;
          button.disabled = true;
          try {
            await run();
          } catch (err) {
            o.notifyError(`${o.failure}: ${err instanceof Error ? err.message : String(err)}`);
          } finally {
            button.disabled = false;
          }
        });
      },
    },
    o.label,
  );
  return button;
}
