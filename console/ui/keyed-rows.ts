/**
 * Table rows kept by key across refreshes: a row that stays is updated in place and not moved
 * unless the order changed, so focus (a keyboard user on a Kill button) and selection survive a
 * list that refreshes every few seconds.
 */
import { h } from "./dom.js";

export interface KeyedRow<T> {
  readonly tr: HTMLTableRowElement;
  /** Brings the row's cells up to date with the item's latest state. */
  update(item: T): void;
}

export class KeyedRows<T> {
  readonly #rows = new Map<string, KeyedRow<T>>();
  readonly #tbody: HTMLTableSectionElement;
  readonly #make: (item: T) => KeyedRow<T>;
  readonly #key: (item: T) => string;
  readonly #empty: HTMLTableRowElement;

  constructor(
    tbody: HTMLTableSectionElement,
    columns: number,
    key: (item: T) => string,
    make: (item: T) => KeyedRow<T>,
  ) {
    this.#tbody = tbody;
    this.#key = key;
    this.#make = make;
    this.#empty = h("tr", { class: "empty" }, h("td", { colspan: columns }));
  }

  /** Shows `items` in this order; `emptyText` when there are none. */
  set(items: readonly T[], emptyText: string): void {
    const keep = new Set<string>();
    let i = 0;
    for (const item of items) {
      const key = this.#key(item);
      keep.add(key);
      let row = this.#rows.get(key);
      if (row === undefined) {
        row = this.#make(item);
        this.#rows.set(key, row);
      } else {
        row.update(item);
      }
      const at = this.#tbody.children[i] ?? null;
      if (at !== row.tr) this.#tbody.insertBefore(row.tr, at);
      i++;
    }
    for (const [key, row] of this.#rows) {
      if (keep.has(key)) continue;
      row.tr.remove();
      this.#rows.delete(key);
    }
    if (items.length === 0) {
      this.#empty.cells[0]!.textContent = emptyText;
      this.#tbody.append(this.#empty);
    } else {
      this.#empty.remove();
    }
  }
}
