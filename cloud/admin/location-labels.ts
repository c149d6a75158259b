/**
 * The `location` label of the relay's metrics, bounded. Locations are made by operators, so
 * their number is bounded by configuration already; the cap holds even when it is not (a
 * script that creates a location per customer): each distinct location is one more series of
 * every metric that has the label, and Prometheus pays for each series for as long as it is
 * kept. The first `max` locations seen keep their own series for the life of the relay; any
 * later one counts under `OTHER_LOCATION`.
 */

/** Distinct locations with series of their own; far above any configuration seen in practice. */
export const MAX_LOCATION_LABELS = 1000;

/**
 * The label value of locations past the cap. It is a valid location name too: a location
 * really called "other" shares its series with the overflow.
 */
export const OTHER_LOCATION = "other";

export class LocationLabels {
  readonly #max: number;
  readonly #admitted = new Set<string>();
  #overflowed = false;

  constructor(max: number = MAX_LOCATION_LABELS) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`location label cap ${max} is not >= 1`);
    this.#max = max;
  }

  /** The label value for `location`: itself while there is room or it has a series already. */
  of(location: string): string {
    if (this.#admitted.has(location)) return location;
    if (this.#admitted.size < this.#max) {
      this.#admitted.add(location);
      return location;
    }
    this.#overflowed = true;
    return OTHER_LOCATION;
  }

  /** Every label value given out so far, `OTHER_LOCATION` once a location was folded into it. */
  *known(): IterableIterator<string> {
    yield* this.#admitted;
    if (this.#overflowed && !this.#admitted.has(OTHER_LOCATION)) yield OTHER_LOCATION;
  }
}
