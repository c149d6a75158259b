/**
 * The fields of a mapping, for adding one and for editing one in place. The API validates
 * (README "Admin API": hosts, ports and ranges of the same length, locations); its answer is
 * shown where it belongs: each `issues[].path` next to its field, an overlap (`conflictsWith`)
 * as a link to the mapping it overlaps.
 */
import { ApiError } from "../api/client.js";
import type { Mapping, MappingInput, PortSpec, Protocol } from "../api/types.js";
import { h, replace } from "../ui/dom.js";
import { type Field, field } from "../ui/parts.js";

type FieldName = keyof MappingInput;

export interface MappingFormOptions {
  /** The mapping being edited; a new one when absent. */
  readonly initial?: Mapping;
  readonly submitLabel: string;
  /** Saves; throws the API's error to have it shown. */
  readonly onSubmit: (input: MappingInput, changed: Partial<MappingInput>) => Promise<void>;
  readonly onCancel?: () => void;
  /** How to name a mapping in an overlap message (`ftp.example:21 → 10.0.0.5:21`). */
  readonly describe: (id: string) => string | undefined;
  /** Shows the conflicting mapping (scrolls to it, highlights it). */
  readonly reveal: (id: string) => void;
}

/** `21` → 21, `30000-30010` stays a string; what the API takes for a port. */
export function portValue(text: string): PortSpec {
  const t = text.trim();
  return /^\d+$/.test(t) ? Number(t) : t;
}

export function mappingForm(o: MappingFormOptions): { element: HTMLFormElement; focus(): void } {
  const m = o.initial;
  const fields: Record<FieldName, Field> = {
    virtualHost: field("Virtual host", "virtualHost", {
      value: m?.virtualHost ?? "",
      required: true,
      placeholder: "ftp.plant-1.internal",
    }),
    virtualPort: field("Virtual port(s)", "virtualPort", {
      value: m === undefined ? "" : String(m.virtualPort),
      required: true,
      placeholder: "21 or 30000-30010",
    }),
    internalHost: field("Internal host", "internalHost", {
      value: m?.internalHost ?? "",
      required: true,
      placeholder: "10.0.0.5",
    }),
    internalPort: field("Internal port(s)", "internalPort", {
      value: m === undefined ? "" : String(m.internalPort),
      required: true,
      placeholder: "same length as the virtual range",
    }),
    location: field("Location", "location", { value: m?.location ?? "default", required: true }),
    protocol: field("Protocol", "protocol", {
      value: m?.protocol ?? "tcp",
      options: ["tcp", "ftp"],
      help: "ftp: the relay follows the control channel (passive replies, active mode).",
    }),
    description: field("Description", "description", { value: m?.description ?? "" }),
  };
  const formError = h("div", { class: "form-error", role: "alert", "data-testid": "mapping-form-error" });
  const submit = h("button", { type: "submit", class: "primary" }, o.submitLabel);
  const cancel =
    o.onCancel === undefined
      ? null
      : h("button", { type: "button", onclick: () => o.onCancel?.() }, "Cancel");

  const read = (): MappingInput => ({
    virtualHost: fields.virtualHost.input.value.trim(),
    virtualPort: portValue(fields.virtualPort.input.value),
    internalHost: fields.internalHost.input.value.trim(),
    internalPort: portValue(fields.internalPort.input.value),
    location: fields.location.input.value.trim(),
    protocol: fields.protocol.input.value as Protocol,
    description: fields.description.input.value,
  });

  const changedFrom = (input: MappingInput): Partial<MappingInput> => {
    if (m === undefined) return input;
    const out: Partial<MappingInput> = {};
    for (const k of Object.keys(input) as FieldName[]) {
      if (String(input[k]) !== String(m[k])) Object.assign(out, { [k]: input[k] });
    }
    return out;
  };

  const showError = (err: unknown): void => {
    if (!(err instanceof ApiError)) {
      formError.textContent = err instanceof Error ? err.message : String(err);
      return;
    }
    const loose: string[] = [];
    for (const issue of err.issues) {
      const f = fields[issue.path.split(".")[0] as FieldName] as Field | undefined;
      if (f === undefined) loose.push(issue.path === "" ? issue.message : `${issue.path}: ${issue.message}`);
      else f.setError(issue.message);
    }
    if (err.conflictsWith !== undefined) {
      const id = err.conflictsWith;
      const name = o.describe(id);
      replace(
        formError,
        "Overlaps mapping ",
        h(
          "a",
          {
            href: `#/mappings?focus=${encodeURIComponent(id)}`,
            "data-testid": "conflict-link",
            onclick: (e) => {
              e.preventDefault();
              o.reveal(id);
            },
          },
          name === undefined ? id : `${name} (${id})`,
        ),
        " of the same location: two mappings cannot cover the same virtual port.",
      );
    } else if (loose.length > 0 || err.issues.length === 0) {
      formError.textContent = loose.length > 0 ? loose.join("; ") : err.message;
    }
    const firstInvalid = Object.values(fields).find((f) => f.input.getAttribute("aria-invalid") === "true");
    firstInvalid?.input.focus();
  };

  const element = h(
    "form",
    {
      class: "mapping-form",
      "aria-label": m === undefined ? "Add a mapping" : `Edit mapping ${m.id}`,
      novalidate: true,
      onsubmit: (e) => {
        e.preventDefault();
        for (const f of Object.values(fields)) f.setError("");
        formError.textContent = "";
        const input = read();
        submit.disabled = true;
        o.onSubmit(input, changedFrom(input))
          .catch(showError)
          .finally(() => {
            submit.disabled = false;
          });
      },
      onkeydown: (e) => {
        if ((e as KeyboardEvent).key === "Escape" && o.onCancel !== undefined) {
          e.preventDefault();
          o.onCancel();
        }
      },
    },
    h(
      "div",
      { class: "fields" },
      fields.virtualHost.wrap,
      fields.virtualPort.wrap,
      fields.internalHost.wrap,
      fields.internalPort.wrap,
      fields.location.wrap,
      fields.protocol.wrap,
      fields.description.wrap,
    ),
    formError,
    h("div", { class: "form-actions" }, submit, cancel),
  );
  return { element, focus: () => fields.virtualHost.input.focus() };
}
