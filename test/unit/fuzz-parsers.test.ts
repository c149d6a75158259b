/**
 * Property-based tests (fast-check) of every parser that reads a peer's bytes or an operator's
 * text: the SOCKS handshake, the tunnel frame decoder, FTP control lines and data addresses,
 * the agent's policy grammar and the admin API's bodies. For any input: no crash, no hang, a
 * coded error (or "need more") for what is malformed, nothing held beyond the limits, and what
 * is well formed reads back as written, however it is split.
 */
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { PassThrough } from "node:stream";
import { describe, it } from "node:test";
import fc from "fast-check";
import { parsePolicy } from "../../agent/policy.js";
import { mappingCreateBody } from "../../cloud/admin/schemas.js";
import { splitCommand } from "../../cloud/ftp/commands.js";
import { FtpReplyReader } from "../../cloud/ftp/reply-reader.js";
import { NEED_MORE } from "../../cloud/socks/codec.js";
import { readHandshake } from "../../cloud/socks/handshake.js";
import { UnderpassError } from "../../shared/errors.js";
import {
  parseEprtAddress,
  parseEpsvReply,
  parseLprtAddress,
  parsePasvReply,
  parsePortAddress,
} from "../../shared/ftp/data-address.js";
import type { Frame } from "../../shared/tunnel/frame.js";
import { encodeFrame, FrameDecoder } from "../../shared/tunnel/frame-codec.js";

/** Enough runs to find the corners, few enough for a loaded 2-core machine. */
const RUNS = { numRuns: 400 };
const POLICY = { requireAuth: true, anonymousLocation: "default" };
const LIMITS = { maxFramePayload: 64 * 1024, maxControlPayload: 4096 };

/** Splits `b` at the given cut points (fast-check picks them). */
function split(b: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (b.length + 1)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let at = 0;
  for (const p of points) {
    out.push(b.subarray(at, p));
    at = p;
  }
  out.push(b.subarray(at));
  return out;
}

describe("parsers under random input (fast-check)", () => {
  it("SOCKS handshake: any bytes give a message, need-more or a coded error, never a throw", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("greeting", "credentials", "request" as const),
        fc.uint8Array({ maxLength: 600 }),
        (state, bytes) => {
          const r = readHandshake(state, Buffer.from(bytes), POLICY);
          if (r === NEED_MORE) return true;
          if (r instanceof UnderpassError) return r.code.startsWith("UP_ERR_");
          assert.ok(r.consumed > 0 && r.consumed <= bytes.length, "consumes what it read, no more");
          return true;
        },
      ),
      RUNS,
    );
  });

  it("SOCKS request: a valid CONNECT by name reads back, split anywhere", () => {
    const hostName = fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,60}$/);
    fc.assert(
      fc.property(
        hostName,
        fc.integer({ min: 1, max: 65535 }),
        fc.array(fc.nat(), { maxLength: 4 }),
        (host, port, cuts) => {
          const name = Buffer.from(host);
          const req = Buffer.concat([
            Buffer.from([5, 1, 0, 3, name.length]),
            name,
            Buffer.from([port >> 8, port & 0xff]),
          ]);
          let buf = Buffer.alloc(0);
          let result: ReturnType<typeof readHandshake> = NEED_MORE;
          for (const piece of split(req, cuts)) {
            buf = Buffer.concat([buf, piece]);
            result = readHandshake("request", buf, POLICY);
            if (result !== NEED_MORE) break;
          }
          assert.ok(result !== NEED_MORE && !(result instanceof UnderpassError) && result.step === "request");
          assert.deepEqual(
            [result.request.host, result.request.port, result.consumed],
            [host, port, req.length],
          );
        },
      ),
      RUNS,
    );
  });

  it("tunnel frames: garbage ends in a coded error or nothing, never a throw of another kind, never a buffer past the limit", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), fc.array(fc.nat(), { maxLength: 6 }), (bytes, cuts) => {
        const d = new FrameDecoder(LIMITS);
        try {
          for (const piece of split(Buffer.from(bytes), cuts)) {
            d.push(piece, (f) => {
              if (f.type === "data") assert.ok(f.data.length <= LIMITS.maxFramePayload);
            });
          }
        } catch (err) {
          assert.ok(err instanceof UnderpassError, `a coded error, not ${String(err)}`);
        }
      }),
      RUNS,
    );
  });

  it("tunnel frames: well-formed frames decode to themselves, split anywhere", () => {
    const frame: fc.Arbitrary<Frame> = fc.oneof(
      fc.record({ type: fc.constant("ping" as const), nonce: fc.nat() }),
      fc.record({ type: fc.constant("pong" as const), nonce: fc.nat() }),
      fc.record({ type: fc.constant("fin" as const), streamId: fc.integer({ min: 1, max: 1000 }) }),
      fc.record({
        type: fc.constant("window-update" as const),
        streamId: fc.integer({ min: 1, max: 1000 }),
        delta: fc.integer({ min: 1, max: 2 ** 31 }),
      }),
    );
    fc.assert(
      fc.property(
        fc.array(frame, { minLength: 1, maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (frames, cuts) => {
          const bytes = Buffer.concat(frames.map(encodeFrame));
          const got: Frame[] = [];
          const d = new FrameDecoder(LIMITS);
          for (const piece of split(bytes, cuts)) d.push(piece, (f) => got.push(f));
          // fast-check builds records without a prototype; compare the fields
          assert.deepEqual(
            got,
            frames.map((f) => ({ ...f })),
          );
          assert.ok(d.idle);
        },
      ),
      RUNS,
    );
  });

  it("FTP data addresses and command lines: any text parses to an address, null or a named problem", () => {
    const line = fc.string({ maxLength: 200, unit: "binary" });
    fc.assert(
      fc.property(line, (text) => {
        for (const r of [parsePortAddress(text), parseEprtAddress(text), parseLprtAddress(text)]) {
          if (r.ok) assert.ok(r.value.port >= 1 && r.value.port <= 65535);
          else assert.ok(["syntax", "protocol", "address", "port"].includes(r.problem));
        }
        const pasv = parsePasvReply(`227 ${text}`);
        if (pasv) assert.ok(pasv.port >= 1 && pasv.port <= 65535);
        const epsv = parseEpsvReply(`229 ${text}`);
        if (epsv !== null) assert.ok(epsv >= 1 && epsv <= 65535);
        const c = splitCommand(text);
        assert.equal(c.verb, c.verb.toUpperCase());
        return true;
      }),
      RUNS,
    );
  });

  it("FTP replies: random server bytes end in replies, an error, or a wait — the buffer stays bounded", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 20_000 }), async (bytes) => {
        const s = new PassThrough();
        const reader = new FtpReplyReader(s as unknown as Socket);
        s.end(Buffer.from(bytes));
        for (let i = 0; i < 600; i++) {
          try {
            await reader.next(50);
          } catch (err) {
            assert.ok(err instanceof Error);
            return;
          }
        }
      }),
      { numRuns: 60 },
    );
  });

  it("policy grammar: any text is a policy or a ValidationError naming the issue", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        try {
          parsePolicy(text);
        } catch (err) {
          assert.ok(err instanceof UnderpassError && err.code === "UP_ERR_VALIDATION", String(err));
        }
      }),
      RUNS,
    );
  });

  it("admin mapping bodies: any JSON value is a mapping or a list of issues, never a throw", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.jsonValue(),
          fc.record(
            {
              virtualHost: fc.oneof(fc.string(), fc.domain(), fc.ipV4(), fc.ipV6()),
              virtualPort: fc.oneof(fc.integer(), fc.string()),
              internalHost: fc.oneof(fc.string(), fc.domain(), fc.ipV4()),
              internalPort: fc.oneof(fc.integer(), fc.string()),
              protocol: fc.string(),
            },
            { requiredKeys: [] },
          ),
        ),
        (body) => {
          const r = mappingCreateBody.safeParse(body);
          if (r.success) {
            assert.ok(r.data.virtualPort.start >= 1 && r.data.virtualPort.end <= 65535);
            assert.equal(
              r.data.virtualPort.end - r.data.virtualPort.start,
              r.data.internalPort.end - r.data.internalPort.start,
            );
          } else assert.ok(r.error.issues.length > 0);
        },
      ),
      RUNS,
    );
  });
});
