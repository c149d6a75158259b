/**
 * The console's one rendering helper: `h("button", {type: "button", onclick}, "Kill")` makes an
 * element, its attributes and children. Text is always set as text (never parsed as HTML), so
 * nothing the API returns can inject markup.
 */

export type Child = Node | string | number | null | undefined | false | readonly Child[];

/** Attributes; `on<event>` keys take listeners; `value` and `checked` are set as properties. */
export type Props = Readonly<
  Record<string, string | number | boolean | null | undefined | ((event: Event) => void)>
>;

function applyProps(el: Element, props: Props): void {
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "value" && (el instanceof HTMLInputElement || el instanceof HTMLTextAreaElement)) {
      // the default too, so that a form's reset() comes back to it
      el.defaultValue = String(value);
      el.value = String(value);
    } else if (key === "checked" && el instanceof HTMLInputElement) {
      el.checked = value === true;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

/** Appends children, flattening arrays and skipping empty ones. */
export function append(parent: Node, children: readonly Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(parent, c);
    else parent.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props?: Props | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props) applyProps(el, props);
  append(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** An SVG element (the traffic chart). */
export function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  props?: Props | null,
  ...children: Child[]
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  if (props) applyProps(el, props);
  append(el, children);
  return el;
}

/** Replaces `parent`'s children. */
export function replace(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}

let nextId = 0;
/** A document-unique id, for label/aria references. */
export function uid(prefix: string): string {
  return `${prefix}-${++nextId}`;
}

/**
 * Runs `load` now, and again whenever `run()` is called; calls that arrive while one runs are
 * folded into a single next run, so a burst of live events costs at most two requests.
 */
export function coalesce(load: () => Promise<void>): { run(): void } {
  let running = false;
  let again = false;
  const run = (): void => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    load()
      .catch((err: unknown) => console.error("refresh failed", err))
      .finally(() => {
        running = false;
        if (again) {
          again = false;
          run();
        }
      });
  };
  return { run };
}
