import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FrameTooLargeError, ProtocolError } from "../../shared/errors.js";
import {
  DEFAULT_LIMITS,
  GOAWAY_CODE,
  OPEN_CODE,
  OPEN_KIND,
  RESET_CODE,
} from "../../shared/tunnel/constants.js";
import type { Frame } from "../../shared/tunnel/frame.js";
import { encodeDataHeader, encodeFrame, FrameDecoder } from "../../shared/tunnel/frame-codec.js";

const samples: Frame[] = [
  { type: "hello", body: { version: 1, token: "t", agentVersion: "0.1.0", capabilities: ["connect"] } },
  { type: "welcome", body: { version: 1, agentId: "ag_1", location: "default" } },
  {
    type: "open",
    streamId: 1,
    kind: OPEN_KIND.CONNECT,
    host: "ftp.corp.example",
    port: 21,
    timeoutMs: 10_000,
  },
  { type: "open", streamId: 3, kind: OPEN_KIND.BIND, host: "10.0.0.5", port: 0, timeoutMs: 30_000 },
  { type: "open-result", streamId: 1, code: OPEN_CODE.OK, address: "10.0.0.2", port: 40123 },
  { type: "open-result", streamId: 5, code: OPEN_CODE.CONNECTION_REFUSED, address: "", port: 0 },
  { type: "data", streamId: 7, data: Buffer.from("220 ready\r\n") },
  { type: "window-update", streamId: 7, delta: 262_144 },
  { type: "fin", streamId: 7 },
  { type: "reset", streamId: 9, code: RESET_CODE.CONNECTION_RESET, reason: "ECONNRESET" },
  { type: "ping", nonce: 0xdeadbeef },
  { type: "pong", nonce: 42 },
  { type: "goaway", code: GOAWAY_CODE.UNSUPPORTED_VERSION, reason: "version 9 is not supported" },
  { type: "bind-peer", streamId: 11, address: "::1", port: 20 },
  {
    type: "relays",
    relays: [
      { id: "relay-a", url: "wss://relay-a.example:8443/tunnel" },
      { id: "rl_0123456789ab", url: "ws://[::1]:8443/tunnel" },
    ],
  },
  { type: "relays", relays: [] },
];

function decodeAll(chunks: Buffer[], limits = DEFAULT_LIMITS): Frame[] {
  const d = new FrameDecoder(limits);
  const out: Frame[] = [];
  for (const c of chunks) d.push(c, (f) => out.push(f));
  return out;
}

/** DATA pieces of one frame are merged back, so results compare with the frames sent. */
function mergeData(frames: Frame[]): Frame[] {
  const out: Frame[] = [];
  for (const f of frames) {
    const last = out[out.length - 1];
    if (f.type === "data" && last?.type === "data" && last.streamId === f.streamId) {
      out[out.length - 1] = { ...last, data: Buffer.concat([last.data, f.data]) };
    } else out.push(f);
  }
  return out;
}

describe("frame codec", () => {
  it("encodes the documented vectors", () => {
    assert.equal(
      encodeFrame({ type: "window-update", streamId: 1, delta: 65_536 }).toString("hex"),
      "06" + "00000001" + "00000004" + "00010000",
    );
    assert.equal(encodeFrame({ type: "fin", streamId: 3 }).toString("hex"), "07" + "00000003" + "00000000");
    assert.equal(
      encodeFrame({
        type: "open",
        streamId: 1,
        kind: OPEN_KIND.CONNECT,
        host: "ab",
        port: 21,
        timeoutMs: 1000,
      }).toString("hex"),
      "03" + "00000001" + "0000000a" + "01" + "0015" + "000003e8" + "02" + "6162",
    );
    assert.equal(
      encodeFrame({ type: "ping", nonce: 1 }).toString("hex"),
      "09" + "00000000" + "00000004" + "00000001",
    );
    // 2 count + (1 id length + "a" + 2 URL length + "ws://b") + (1 + "cd" + 2 + "w")
    assert.equal(
      encodeFrame({
        type: "relays",
        relays: [
          { id: "a", url: "ws://b" },
          { id: "cd", url: "w" },
        ],
      }).toString("hex"),
      "0d" +
        "00000000" +
        "00000012" +
        "0002" +
        "01" +
        "61" +
        "0006" +
        "77733a2f2f62" +
        "02" +
        "6364" +
        "0001" +
        "77",
    );
  });

  it("refuses a relay set it cannot carry", () => {
    const many = Array.from({ length: 65 }, (_, i) => ({ id: `r${i}`, url: "ws://x/tunnel" }));
    assert.throws(() => encodeFrame({ type: "relays", relays: many }), ProtocolError);
    assert.throws(() => encodeFrame({ type: "relays", relays: [{ id: "", url: "ws://x" }] }), ProtocolError);
  });

  it("round-trips every frame type", () => {
    const bytes = samples.map((f) => encodeFrame(f));
    assert.deepEqual(decodeAll(bytes), samples);
  });

  it("decodes the stream split at every byte offset", () => {
    const all = Buffer.concat(samples.map((f) => encodeFrame(f)));
    for (let i = 0; i <= all.length; i++) {
      const got = mergeData(decodeAll([all.subarray(0, i), all.subarray(i)]));
      assert.deepEqual(got, samples, `split at ${i}`);
    }
  });

  it("decodes the stream fed one byte at a time", () => {
    const all = Buffer.concat(samples.map((f) => encodeFrame(f)));
    const bytes = [...all].map((b) => Buffer.from([b]));
    assert.deepEqual(mergeData(decodeAll(bytes)), samples);
  });

  it("hands DATA payloads out without copying and across messages", () => {
    const payload = Buffer.alloc(100_000, 7);
    const d = new FrameDecoder(DEFAULT_LIMITS);
    const got: Buffer[] = [];
    d.push(encodeDataHeader(5, payload.length), (f) => assert.fail(`unexpected ${f.type}`));
    assert.equal(d.idle, false);
    d.push(payload, (f) => {
      assert.equal(f.type, "data");
      if (f.type === "data") got.push(f.data);
    });
    assert.equal(got.length, 1);
    assert.equal(got[0]!.buffer, payload.buffer, "the payload is a view of the message, not a copy");
    assert.equal(d.idle, true);
  });

  it("rejects garbage with coded errors", () => {
    const cases: Array<[string, Buffer, typeof ProtocolError | typeof FrameTooLargeError]> = [
      ["unknown type", Buffer.from("ff" + "00000001" + "00000000", "hex"), ProtocolError],
      ["session frame on a stream", Buffer.from("09000000070000000400000001", "hex"), ProtocolError],
      ["stream frame on stream 0", Buffer.from("070000000000000000", "hex"), ProtocolError],
      ["fin with payload", Buffer.from("07000000010000000100", "hex"), ProtocolError],
      ["short window update", Buffer.from("0600000001000000020001", "hex"), ProtocolError],
      ["bad open kind", Buffer.from("0300000001000000080900150000000000", "hex"), ProtocolError],
      [
        "open host length mismatch",
        Buffer.from("030000000100000009010015000003e80561", "hex"),
        ProtocolError,
      ],
      [
        "bad hello json",
        Buffer.concat([Buffer.from("01" + "00000000" + "00000003", "hex"), Buffer.from("{x}")]),
        ProtocolError,
      ],
      ["bad reset code", Buffer.from("080000000100000001ee", "hex"), ProtocolError],
      ["relays on a stream", Buffer.from("0d00000001000000020000", "hex"), ProtocolError],
      ["relays too short", Buffer.from("0d000000000000000100", "hex"), ProtocolError],
      ["relays count beyond its bytes", Buffer.from("0d00000000000000020001", "hex"), ProtocolError],
      ["relays count above the bound", Buffer.from("0d00000000000000020041", "hex"), ProtocolError],
      ["relays with an empty id", Buffer.from("0d000000000000000600010000017a", "hex"), ProtocolError],
      ["relays URL cut short", Buffer.from("0d0000000000000006000101610005", "hex"), ProtocolError],
      ["relays with trailing bytes", Buffer.from("0d00000000000000080001016100017700", "hex"), ProtocolError],
      ["oversized data", Buffer.from("0500000001ffffffff", "hex"), FrameTooLargeError],
      ["oversized control", Buffer.from("0100000000" + "00100000", "hex"), FrameTooLargeError],
    ];
    for (const [name, bytes, cls] of cases) {
      assert.throws(() => decodeAll([bytes]), cls, name);
    }
  });

  it("refuses a DATA frame one byte over the limit before reading it", () => {
    const limits = { ...DEFAULT_LIMITS, maxFramePayload: 1024 };
    assert.doesNotThrow(() => decodeAll([encodeDataHeader(1, 1024)], limits));
    assert.throws(() => decodeAll([encodeDataHeader(1, 1025)], limits), FrameTooLargeError);
  });

  it("survives random garbage by throwing only coded errors", () => {
    let seed = 12345;
    const rand = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let i = 0; i < 2000; i++) {
      const len = rand() % 64;
      const b = Buffer.alloc(len);
      for (let j = 0; j < len; j++) b[j] = rand() & 0xff;
      try {
        decodeAll([b]);
      } catch (err) {
        assert.ok(err instanceof ProtocolError || err instanceof FrameTooLargeError, String(err));
      }
    }
  });
});
