/**
 * The window budget on its own: grants stop at the limit of every level, idle holders are
 * shrunk before a grant falls short, and what is given back can be granted again.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { WindowBudget, type WindowHolder } from "../../shared/tunnel/window-budget.js";

/** A holder that gives back everything it holds when shrunk, if it is idle. */
class Holder implements WindowHolder {
  reserved = 0;
  shrunk = 0;
  constructor(
    readonly budget: WindowBudget,
    public reclaimable = false,
  ) {}
  ask(bytes: number): number {
    const got = this.budget.grant(this, bytes);
    this.reserved += got;
    return got;
  }
  shrink(): void {
    this.shrunk++;
    const n = this.reserved;
    this.reserved = 0;
    this.budget.giveBack(this, n);
  }
  sweep(): void {}
}

describe("window budget", () => {
  it("grants up to the tighter of its own limit and its parent's", () => {
    const process = new WindowBudget(100);
    const a = new WindowBudget(80, process);
    const b = new WindowBudget(80, process);
    assert.equal(new Holder(a).ask(60), 60);
    assert.equal(new Holder(a).ask(60), 20, "the tunnel's own limit");
    assert.equal(new Holder(b).ask(60), 20, "the process's limit");
    assert.equal(process.used, 100);
    assert.equal(process.peak, 100);
    assert.equal(a.shortfalls, 1);
    assert.equal(process.shortfalls, 1);
  });

  it("shrinks idle holders, in this tunnel or another, before a grant falls short", () => {
    const process = new WindowBudget(100);
    const a = new WindowBudget(100, process);
    const b = new WindowBudget(100, process);
    const busy = new Holder(a);
    const idle = new Holder(b, true);
    busy.ask(50);
    idle.ask(50);
    const asking = new Holder(a);
    assert.equal(asking.ask(40), 40, "the idle holder's growth went to the one asking");
    assert.equal(idle.shrunk, 1);
    assert.equal(busy.shrunk, 0, "a holder whose consumer reads keeps its window");
    assert.equal(process.shortfalls, 0);
    assert.equal(new Holder(a).ask(40), 10, "then it falls short");
    assert.ok(process.used <= process.limit);
  });

  it("forgets a holder once it gave back everything", () => {
    const budget = new WindowBudget(10);
    const h = new Holder(budget);
    h.ask(10);
    assert.equal(budget.holders.size, 1);
    h.reserved = 4;
    budget.giveBack(h, 6);
    assert.equal(budget.holders.size, 1);
    h.reserved = 0;
    budget.giveBack(h, 4);
    assert.equal(budget.holders.size, 0);
    assert.equal(budget.used, 0);
  });
});
