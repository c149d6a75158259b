import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ControlQueue } from "../../shared/tunnel/control-queue.js";

/** A transport whose writes complete only when the test says so (a peer that does not read). */
function stalledTransport() {
  const writes: Array<{ bytes: Buffer; onSent: () => void }> = [];
  return {
    writes,
    write: (bytes: Buffer, onSent: () => void) => writes.push({ bytes: Buffer.from(bytes), onSent }),
    /** The oldest write left user space. */
    complete(): void {
      const w = writes.find((x) => !("done" in x));
      assert.ok(w, "a write to complete");
      Object.assign(w, { done: true });
      w.onSent();
    },
  };
}

const frame = (text: string): Buffer => Buffer.from(text);

describe("control queue", () => {
  it("writes a frame at once, and coalesces those behind it into one write, in order", () => {
    const t = stalledTransport();
    const q = new ControlQueue(1024, t.write);
    assert.equal(q.push(frame("a")), true);
    assert.equal(t.writes.length, 1, "nothing waits: the frame goes out at once");
    for (const f of ["b", "cc", "ddd"]) assert.equal(q.push(frame(f)), true);
    assert.equal(t.writes.length, 1, "behind a write still in user space, frames wait");
    assert.equal(q.bytes, 7);
    t.complete();
    assert.equal(t.writes.length, 2);
    assert.equal(t.writes[1]!.bytes.toString(), "bccddd", "one write, in order");
    assert.equal(q.bytes, 6);
    t.complete();
    assert.equal(q.bytes, 0);
    q.push(frame("e"));
    assert.equal(t.writes.length, 3, "an empty queue writes at once again");
  });

  it("hands coalesced frames over on flush(), before a DATA frame would go", () => {
    const t = stalledTransport();
    const q = new ControlQueue(1024, t.write);
    q.push(frame("open-result"));
    q.push(frame("window-update"));
    q.flush();
    assert.deepEqual(
      t.writes.map((w) => w.bytes.toString()),
      ["open-result", "window-update"],
    );
    q.flush();
    assert.equal(t.writes.length, 2, "nothing held: flush() writes nothing");
    assert.equal(q.bytes, "open-result".length + "window-update".length, "both still in user space");
  });

  it("refuses, and does not queue, a frame that would pass the bound", () => {
    const t = stalledTransport();
    const q = new ControlQueue(100, t.write);
    let accepted = 0;
    while (q.push(Buffer.alloc(11))) accepted++;
    assert.equal(accepted, 9, "nine 11-byte PONGs fit in 100 bytes, the tenth does not");
    assert.equal(q.bytes, 99);
    assert.equal(q.push(Buffer.alloc(2)), false, "still refused: over the bound");
    assert.equal(q.push(Buffer.alloc(1)), true, "what still fits is taken");
    t.complete();
    t.complete();
    assert.equal(q.bytes, 0);
    assert.equal(q.push(Buffer.alloc(100)), true, "room again once the peer read");
  });

  it("holds a flood in buffers of 64 KiB of its bytes, not one object per frame", () => {
    const t = stalledTransport();
    const limit = 1024 * 1024;
    const q = new ControlQueue(limit, t.write);
    const pong = Buffer.alloc(13, 0x0a);
    let n = 0;
    while (q.push(pong)) n++;
    assert.equal(n, Math.floor(limit / 13));
    assert.equal(q.bytes, n * 13);
    const handed = t.writes.reduce((sum, w) => sum + w.bytes.length, 0);
    assert.ok(t.writes.length <= 1 + Math.ceil(handed / (64 * 1024)), `${t.writes.length} writes`);
    assert.ok(n * 13 - handed < 64 * 1024, "what is not handed over yet is one buffer under 64 KiB");
  });

  it("keeps its bookkeeping small on a tunnel that always has a write in flight", () => {
    const t = stalledTransport();
    const q = new ControlQueue(1024, t.write);
    q.push(frame("x"));
    for (let i = 0; i < 10_000; i++) {
      q.push(frame("y"));
      q.flush(); // a DATA frame went out
      t.complete();
    }
    assert.equal(q.bytes, 1, "the last write is in flight");
    t.complete();
    assert.equal(q.bytes, 0);
  });

  it("passes every 64 KiB coalesced on to the kernel at once, not at the end of the turn", () => {
    const t = stalledTransport();
    let toKernel = 0;
    const q = new ControlQueue(1024 * 1024, t.write, () => toKernel++);
    q.push(Buffer.alloc(13)); // in flight: the rest is coalesced behind it
    let n = 0;
    while (toKernel === 0) {
      q.push(Buffer.alloc(13));
      n++;
    }
    assert.equal(n, Math.ceil((64 * 1024) / 13));
    assert.equal(t.writes.length, 2, "the coalesced 64 KiB went to the transport as one write");
    assert.equal(t.writes[1]!.bytes.length, n * 13);
  });
});
