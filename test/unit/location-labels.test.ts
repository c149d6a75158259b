/** The `location` label's cap: the first locations keep their own value, later ones are "other". */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LocationLabels, OTHER_LOCATION } from "../../cloud/admin/location-labels.js";

describe("LocationLabels", () => {
  it("gives the first `max` locations their own label for good, and every later one OTHER", () => {
    const labels = new LocationLabels(3);
    assert.deepEqual(
      ["a", "b", "a", "c", "d", "e", "b", "d"].map((l) => labels.of(l)),
      ["a", "b", "a", "c", OTHER_LOCATION, OTHER_LOCATION, "b", OTHER_LOCATION],
    );
    assert.deepEqual([...labels.known()], ["a", "b", "c", OTHER_LOCATION]);
  });

  it("names OTHER among the known labels only once a location was folded into it", () => {
    const labels = new LocationLabels(2);
    labels.of("x");
    labels.of("y");
    assert.deepEqual([...labels.known()], ["x", "y"]);
    labels.of("z");
    assert.deepEqual([...labels.known()], ["x", "y", OTHER_LOCATION]);
  });

  it("does not list OTHER twice when a real location has that name", () => {
    const labels = new LocationLabels(1);
    assert.equal(labels.of(OTHER_LOCATION), OTHER_LOCATION);
    assert.equal(labels.of("late"), OTHER_LOCATION);
    assert.deepEqual([...labels.known()], [OTHER_LOCATION]);
  });

  it("refuses a cap below 1", () => {
    assert.throws(() => new LocationLabels(0), RangeError);
    assert.throws(() => new LocationLabels(1.5), RangeError);
  });
});
