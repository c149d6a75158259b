/**
 * Mappings: virtual host:port (or range) → internal host:port, protocol and location; add,
 * edit in place (ranges included), delete; *Check* (an agent really dials the target) and, for
 * FTP control ports, the *FTP check*. Refreshed when a live event says mappings changed; a row
 * being edited keeps its form across refreshes.
 */
import type { CheckResult, Mapping } from "../api/types.js";
import type { AppContext, PageView } from "../app-context.js";
import { confirmedButton } from "../ui/dialog.js";
import { coalesce, h, replace } from "../ui/dom.js";
import { target } from "../ui/format.js";
import { actionButton, badge, pageHeader, table } from "../ui/parts.js";
import { openFtpCheck } from "./ftp-check-dialog.js";
import { mappingForm } from "./mapping-form.js";

const HEADERS = ["Virtual", "Internal", "Location", "Protocol", "Description", "Check", ""] as const;

/** A mapping the FTP check applies to: FTP-aware, or a single port 21 (the FTP control port). */
function isFtpControl(m: Mapping): boolean {
  return m.protocol === "ftp" || String(m.virtualPort) === "21";
}

export function describeMapping(m: Mapping): string {
  return `${target(m.virtualHost, m.virtualPort)} → ${target(m.internalHost, m.internalPort)}`;
}

export function mappingsPage(ctx: AppContext, params: URLSearchParams): PageView {
  const { api, live } = ctx;
  let mappings: Mapping[] = [];
  let focusId = params.get("focus");
  const checks = new Map<string, CheckResult | { pending: true } | { failed: string }>();
  /** Rows being edited, with their forms (kept across refreshes). */
  const editing = new Map<string, ReturnType<typeof mappingForm>>();
  const list = h("section", { "aria-label": "Mappings" });

  const reveal = (id: string): void => {
    focusId = id;
    render();
    const row = list.querySelector<HTMLElement>(`tr[data-mapping-id="${CSS.escape(id)}"]`);
    row?.scrollIntoView({ block: "center" });
    row?.focus();
  };
  const describe = (id: string): string | undefined => {
    const m = mappings.find((x) => x.id === id);
    return m === undefined ? undefined : describeMapping(m);
  };

  const addForm = mappingForm({
    submitLabel: "Add mapping",
    describe,
    reveal,
    onSubmit: async (input) => {
      const created = await api.addMapping(input);
      ctx.notify(`Mapping ${describeMapping(created)} added.`);
      addForm.element.reset();
      mappingList.run();
    },
  });
  const adder = h(
    "details",
    { class: "adder", "data-testid": "add-mapping" },
    h("summary", null, "Add a mapping"),
    addForm.element,
  );

  const checkCell = (m: Mapping): HTMLElement => {
    const c = checks.get(m.id);
    let content: HTMLElement | string = "–";
    if (c === undefined) content = "–";
    else if ("pending" in c) content = h("span", { "aria-busy": "true" }, "checking…");
    else if ("failed" in c) content = badge(c.failed, "bad");
    else if (c.reachable) content = badge(`reachable in ${(c.latencyMs ?? 0).toFixed(1)} ms`, "ok");
    else content = badge(`unreachable: ${c.error ?? "no reason given"}`, "bad");
    return h("td", { class: "check", "data-testid": "check-result", "aria-live": "polite" }, content);
  };

  const startEdit = (m: Mapping): void => {
    const form = mappingForm({
      initial: m,
      submitLabel: "Save",
      describe,
      reveal,
      onCancel: () => {
        editing.delete(m.id);
        render();
        list
          .querySelector<HTMLButtonElement>(`tr[data-mapping-id="${CSS.escape(m.id)}"] button.edit`)
          ?.focus();
      },
      onSubmit: async (_input, changed) => {
        if (Object.keys(changed).length > 0) {
          const saved = await api.patchMapping(m.id, changed);
          ctx.notify(`Mapping ${describeMapping(saved)} saved.`);
        }
        editing.delete(m.id);
        await refresh();
      },
    });
    editing.set(m.id, form);
    render();
    form.focus();
  };

  const editRow = (m: Mapping, form: ReturnType<typeof mappingForm>): HTMLTableRowElement =>
    h(
      "tr",
      { class: "editing", "data-mapping-id": m.id },
      h("td", { colspan: HEADERS.length }, form.element),
    );

  const row = (m: Mapping): HTMLTableRowElement => {
    const form = editing.get(m.id);
    if (form !== undefined) return editRow(m, form);
    return h(
      "tr",
      { "data-mapping-id": m.id, class: m.id === focusId ? "focused" : "", tabindex: -1 },
      h(
        "th",
        { scope: "row" },
        h("code", null, target(m.virtualHost, m.virtualPort)),
        h("div", { class: "muted id" }, m.id),
      ),
      h("td", null, h("code", null, target(m.internalHost, m.internalPort))),
      h("td", null, m.location),
      h("td", null, m.protocol),
      h("td", null, m.description),
      checkCell(m),
      h(
        "td",
        { class: "actions" },
        h(
          "button",
          {
            type: "button",
            class: "small edit",
            onclick: () => startEdit(m),
          },
          "Edit",
        ),
        actionButton(
          "Check",
          async () => {
            checks.set(m.id, { pending: true });
            render();
            try {
              checks.set(m.id, await api.checkMapping(m.id));
            } catch (err) {
              checks.set(m.id, { failed: err instanceof Error ? err.message : String(err) });
            }
            render();
          },
          { kind: "small", title: "An agent of the location dials the internal target" },
        ),
        isFtpControl(m)
          ? h("button", { type: "button", class: "small", onclick: () => openFtpCheck(api, m) }, "FTP check")
          : null,
        confirmedButton(
          {
            label: "Delete",
            title: `Delete mapping ${describeMapping(m)}?`,
            message: "Connections using it are reset, and clients can no longer reach it.",
            confirmLabel: "Delete mapping",
            failure: "Delete failed",
            notifyError: (msg) => ctx.notify(msg, "error"),
            kind: "small danger",
          },
          async () => {
            await api.deleteMapping(m.id);
            ctx.notify(`Mapping ${describeMapping(m)} deleted.`);
            mappingList.run();
          },
        ),
      ),
    );
  };

  const render = (): void => {
    const sorted = [...mappings].sort(
      (a, b) =>
        a.location.localeCompare(b.location) ||
        a.virtualHost.localeCompare(b.virtualHost) ||
        String(a.virtualPort).localeCompare(String(b.virtualPort), undefined, { numeric: true }),
    );
    replace(list, table("Mappings", HEADERS, sorted.map(row), "No mapping yet: add one above.", "mappings"));
  };

  let first = true;
  const refresh = async (): Promise<void> => {
    mappings = await api.mappings();
    for (const id of editing.keys()) if (!mappings.some((m) => m.id === id)) editing.delete(id);
    // nothing to list yet: the form is what the page is for
    if (first && mappings.length === 0) adder.open = true;
    render();
    // a link to one mapping (an overlap, a connection's mapping) shows it once the list is in
    if (first && focusId !== null) reveal(focusId);
    first = false;
  };
  const mappingList = coalesce(refresh);
  const stops = [
    live.on("config.changed", (c) => {
      if (c.event.startsWith("admin.mapping.") || c.event === "admin.config.imported") mappingList.run();
    }),
  ];
  mappingList.run();

  return {
    element: h("div", { class: "page mappings" }, pageHeader("Mappings"), adder, list),
    dispose: () => {
      for (const stop of stops) stop();
    },
  };
}
