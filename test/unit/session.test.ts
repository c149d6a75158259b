/** Console sessions in memory: ids hashed, absolute and idle expiry, the bound, held answers. */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type { ServerResponse } from "node:http";
import { describe, it } from "node:test";
import { ConsoleSessions, sameSecret } from "../../cloud/admin/session.js";
import { readCookie } from "../../cloud/admin/session-auth.js";

const MINUTE = 60_000;

/** A clock the test moves. */
function clock(start = 1_700_000_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

/** Enough of a ServerResponse for `hold`: it can be destroyed and emits close. */
function fakeResponse(): ServerResponse & { destroyedByTest: boolean } {
  const res = new EventEmitter() as EventEmitter & { destroyedByTest: boolean; writableEnded: boolean };
  res.destroyedByTest = false;
  res.writableEnded = false;
  Object.assign(res, {
    destroy() {
      res.destroyedByTest = true;
      res.emit("close");
    },
  });
  return res as unknown as ServerResponse & { destroyedByTest: boolean };
}

describe("console sessions", () => {
  it("names a session by its id's hash, never the id, and finds it by the id", () => {
    const s = new ConsoleSessions();
    try {
      const { id, session } = s.create();
      assert.match(id, /^[A-Za-z0-9_-]{43}$/, "256 random bits, base64url");
      assert.match(session.actor, /^console:[0-9a-f]{8}$/);
      assert.ok(!session.actor.includes(id.slice(0, 8)));
      assert.equal(s.touch(id)?.actor, session.actor);
      assert.equal(s.touch(`${id}x`), null);
      assert.notEqual(session.csrfToken, id);
    } finally {
      s.close();
    }
  });

  it("ends a session after its idle time, and each request restarts that clock", () => {
    const c = clock();
    const s = new ConsoleSessions({ now: c.now, idleMs: 30 * MINUTE, absoluteMs: 12 * 60 * MINUTE });
    try {
      const { id } = s.create();
      c.advance(29 * MINUTE);
      assert.ok(s.touch(id), "29 min idle: alive");
      c.advance(29 * MINUTE);
      assert.ok(s.touch(id), "touched 29 min ago: alive");
      c.advance(30 * MINUTE);
      assert.equal(s.touch(id), null, "30 min idle: ended");
      assert.equal(s.size, 0);
    } finally {
      s.close();
    }
  });

  it("ends a session at its absolute lifetime however busy it is", () => {
    const c = clock();
    const s = new ConsoleSessions({ now: c.now, idleMs: 30 * MINUTE, absoluteMs: 60 * MINUTE });
    try {
      const { id, session } = s.create();
      assert.equal(session.expiresAt - session.createdAt, 60 * MINUTE);
      for (let i = 0; i < 5; i++) {
        c.advance(10 * MINUTE);
        assert.ok(s.touch(id));
      }
      c.advance(10 * MINUTE);
      assert.equal(s.touch(id), null);
    } finally {
      s.close();
    }
  });

  it("keeps at most maxSessions, ending the least recently used", () => {
    const evicted: string[] = [];
    const s = new ConsoleSessions({ maxSessions: 2, onEvict: (a) => evicted.push(a) });
    try {
      const a = s.create();
      const b = s.create();
      assert.ok(s.touch(a.id), "a is now more recent than b");
      const c = s.create();
      assert.equal(s.size, 2);
      assert.deepEqual(evicted, [b.session.actor]);
      assert.ok(s.touch(a.id) && s.touch(c.id));
      assert.equal(s.touch(b.id), null);
    } finally {
      s.close();
    }
  });

  it("ends the answers a session holds open when it ends, and forgets those that closed", () => {
    const s = new ConsoleSessions();
    try {
      const { id } = s.create();
      const stream = fakeResponse();
      const finished = fakeResponse();
      s.hold(id, stream);
      s.hold(id, finished);
      finished.emit("close");
      assert.equal(s.end(id), true);
      assert.equal(stream.destroyedByTest, true, "the event stream of a signed-out session ends");
      assert.equal(finished.destroyedByTest, false);
      assert.equal(s.end(id), false, "ending twice is nothing");
    } finally {
      s.close();
    }
  });

  it("compares secrets of any length in constant time", () => {
    assert.equal(sameSecret("abc", "abc"), true);
    assert.equal(sameSecret("abc", "abd"), false);
    assert.equal(sameSecret("abc", "abcd"), false);
    assert.equal(sameSecret("", "x"), false);
  });

  it("reads one cookie out of a Cookie header", () => {
    assert.equal(readCookie("a=1; underpass_session=xyz; b=2", "underpass_session"), "xyz");
    assert.equal(readCookie('underpass_session="q"', "underpass_session"), "q");
    assert.equal(readCookie("x_underpass_session=no", "underpass_session"), undefined);
    assert.equal(readCookie("garbage; ;=;", "underpass_session"), undefined);
    assert.equal(readCookie(undefined, "underpass_session"), undefined);
  });
});
