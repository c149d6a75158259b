import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ProtocolError } from "../../shared/errors.js";
import {
  binaryHeaderSize,
  WS_OPCODE,
  WsFrameReader,
  type WsReaderHandlers,
  writeBinaryHeader,
} from "../../shared/tunnel/ws-frame-codec.js";
import { maskInPlace, maskInto, nextMaskKey } from "../../shared/tunnel/ws-mask.js";

function header(length: number, mask: boolean): Buffer {
  const b = Buffer.alloc(binaryHeaderSize(length, mask));
  assert.equal(writeBinaryHeader(b, 0, length, mask), b.length);
  return b;
}

/** A frame as RFC 6455 §5.2 lays it out, masked with `key` when given. */
function frame(opcode: number, payload: Buffer, options: { fin?: boolean; key?: number } = {}): Buffer {
  const { fin = true, key } = options;
  const n = payload.length;
  const len = n < 126 ? [n] : n <= 0xffff ? [126, n >> 8, n & 0xff] : null;
  if (len === null) throw new Error("test frames stay below 64 KiB");
  const masked = key !== undefined;
  const head = Buffer.from([(fin ? 0x80 : 0) | opcode, (masked ? 0x80 : 0) | len[0]!, ...len.slice(1)]);
  if (!masked) return Buffer.concat([head, payload]);
  const k = Buffer.alloc(4);
  k.writeUInt32BE(key >>> 0);
  const body = Buffer.from(payload.map((b, i) => b ^ k[i & 3]!));
  return Buffer.concat([head, k, body]);
}

interface Read {
  binary: Buffer;
  text: Buffer;
  controls: Array<[number, string]>;
}

function readAll(chunks: Buffer[], expectMasked: boolean): Read {
  const r = new WsFrameReader({ expectMasked });
  const binary: Buffer[] = [];
  const text: Buffer[] = [];
  const controls: Array<[number, string]> = [];
  const h: WsReaderHandlers = {
    // copies: the reader hands out views of the chunks, and a test splits the same bytes again
    onBinary: (p) => binary.push(Buffer.from(p)),
    onText: (p) => text.push(Buffer.from(p)),
    onControl: (op, f) => controls.push([op, f.toString("hex")]),
  };
  // fresh copies: the reader unmasks in place, and a test splits the same bytes again
  for (const c of chunks) r.push(Buffer.from(c), h);
  return { binary: Buffer.concat(binary), text: Buffer.concat(text), controls };
}

/** Every split of `bytes` in two, and byte by byte. */
function splits(bytes: Buffer): Buffer[][] {
  const out: Buffer[][] = [[bytes]];
  for (let i = 1; i < bytes.length; i++) out.push([bytes.subarray(0, i), bytes.subarray(i)]);
  out.push([...bytes].map((b) => Buffer.from([b])));
  return out;
}

describe("websocket frame codec", () => {
  it("writes the three length forms, masked with the zero key for clients", () => {
    assert.equal(header(0, false).toString("hex"), "8200");
    assert.equal(header(125, false).toString("hex"), "827d");
    assert.equal(header(126, false).toString("hex"), "827e007e");
    assert.equal(header(65_535, false).toString("hex"), "827effff");
    assert.equal(header(65_536, false).toString("hex"), "827f" + "0000000000010000");
    assert.equal(header(2 ** 33 + 5, false).toString("hex"), "827f" + "0000000200000005");
    assert.equal(header(9, true).toString("hex"), "8289" + "00000000");
    assert.equal(header(70_000, true).toString("hex"), "82ff" + "0000000000011170" + "00000000");
  });

  it("reads what it writes, split anywhere", () => {
    const payload = Buffer.from("tunnel bytes, any split");
    for (const mask of [false, true]) {
      const bytes = Buffer.concat([header(payload.length, mask), payload]);
      for (const chunks of splits(bytes)) {
        assert.deepEqual(readAll(chunks, mask).binary, payload);
      }
    }
  });

  it("unmasks a real key across pieces, continuing where the last piece stopped", () => {
    const payload = Buffer.from("0123456789abcdefghij");
    const bytes = Buffer.concat([
      frame(WS_OPCODE.BINARY, payload.subarray(0, 7), { fin: false, key: 0xa1b2c3d4 }),
      frame(WS_OPCODE.CONTINUATION, payload.subarray(7), { key: 0x01020304 }),
    ]);
    for (const chunks of splits(bytes)) assert.deepEqual(readAll(chunks, true).binary, payload);
  });

  it("reads a 16-bit length and hands large payloads out without copying", () => {
    const payload = Buffer.alloc(40_000, 7);
    const bytes = frame(WS_OPCODE.BINARY, payload);
    const pieces: Buffer[] = [];
    new WsFrameReader({ expectMasked: false }).push(bytes, {
      onBinary: (p) => pieces.push(p),
      onText: () => assert.fail("no text"),
      onControl: () => assert.fail("no control"),
    });
    assert.equal(pieces.length, 1);
    assert.equal(pieces[0]!.buffer, bytes.buffer, "a view of the chunk, not a copy");
    assert.deepEqual(pieces[0], payload);
  });

  it("hands control frames over whole, as they arrived, between data frames", () => {
    const close = frame(WS_OPCODE.CLOSE, Buffer.from([0x03, 0xe8, 0x6f, 0x6b]), { key: 0x11223344 });
    const ping = frame(WS_OPCODE.PING, Buffer.alloc(0), { key: 0 });
    const bytes = Buffer.concat([
      frame(WS_OPCODE.BINARY, Buffer.from("ab"), { fin: false, key: 0 }),
      ping,
      frame(WS_OPCODE.CONTINUATION, Buffer.from("cd"), { key: 0 }),
      close,
    ]);
    for (const chunks of splits(bytes)) {
      const r = readAll(chunks, true);
      assert.equal(r.binary.toString(), "abcd");
      assert.deepEqual(r.controls, [
        [WS_OPCODE.PING, ping.toString("hex")],
        [WS_OPCODE.CLOSE, close.toString("hex")],
      ]);
    }
  });

  it("reports text apart from binary", () => {
    const bytes = Buffer.concat([
      frame(WS_OPCODE.TEXT, Buffer.from("hi")),
      frame(WS_OPCODE.BINARY, Buffer.from("!")),
    ]);
    const r = readAll([bytes], false);
    assert.equal(r.text.toString(), "hi");
    assert.equal(r.binary.toString(), "!");
  });

  it("refuses frames that break RFC 6455 or the role", () => {
    const bad: Array<[string, Buffer, boolean]> = [
      ["RSV1 set", Buffer.from([0xc2, 0x00]), false],
      ["unmasked from a client", frame(WS_OPCODE.BINARY, Buffer.from("x")), true],
      ["masked from a server", frame(WS_OPCODE.BINARY, Buffer.from("x"), { key: 1 }), false],
      ["continuation without a message", frame(WS_OPCODE.CONTINUATION, Buffer.from("x")), false],
      [
        "a new message inside a fragmented one",
        Buffer.concat([
          frame(WS_OPCODE.BINARY, Buffer.from("a"), { fin: false }),
          frame(WS_OPCODE.BINARY, Buffer.from("b")),
        ]),
        false,
      ],
      ["reserved data opcode", frame(0x3, Buffer.from("x")), false],
      ["reserved control opcode", frame(0xb, Buffer.alloc(0)), false],
      ["fragmented control frame", frame(WS_OPCODE.PING, Buffer.alloc(0), { fin: false }), false],
      ["oversized control frame", frame(WS_OPCODE.PING, Buffer.alloc(126)), false],
    ];
    for (const [what, bytes, expectMasked] of bad) {
      assert.throws(() => readAll([bytes], expectMasked), ProtocolError, what);
    }
  });

  it("writes masked frames with a fresh non-zero key each, that read back as they were, split anywhere", () => {
    const keys = new Set<number>();
    for (const length of [0, 1, 5, 31, 32, 33, 125, 126, 1000, 70_000]) {
      const payload = Buffer.from(Array.from({ length }, (_, i) => (i * 7 + length) & 0xff));
      const key = nextMaskKey();
      assert.notEqual(key, 0, "a random key (1 in 2^32 would be zero)");
      keys.add(key);
      const size = binaryHeaderSize(length, true);
      const bytes = Buffer.alloc(size + length);
      writeBinaryHeader(bytes, 0, length, true, key);
      maskInto(payload, key, bytes, size);
      assert.equal(bytes.readUInt32BE(size - 4), key, "the key stands right before the payload");
      // the test's own RFC 6455 framing knows lengths below 64 KiB
      if (length < 65_536)
        assert.deepEqual(bytes, frame(WS_OPCODE.BINARY, payload, { key }), `${length} bytes`);
      if (length >= 4) assert.notDeepEqual(bytes.subarray(size), payload, "the payload is masked");
      const chunkings =
        length <= 125
          ? splits(bytes)
          : [[bytes], [bytes.subarray(0, 3), bytes.subarray(3, 999), bytes.subarray(999)]];
      for (const chunks of chunkings) assert.deepEqual(readAll(chunks, true).binary, payload);
    }
    assert.equal(keys.size, 10, "a fresh key every frame");
  });

  it("masks in place piece by piece as in one go, at every offset into the key", () => {
    const payload = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
    const key = 0xa1b2c3d4;
    const whole = Buffer.alloc(100);
    maskInto(payload, key, whole, 0);
    for (let cut = 0; cut <= 100; cut++) {
      const pieces = Buffer.from(payload);
      maskInPlace(pieces.subarray(0, cut), key, 0);
      maskInPlace(pieces.subarray(cut), key, cut);
      assert.deepEqual(pieces, whole, `cut at ${cut}`);
    }
    // masking twice is the identity
    maskInPlace(whole, key);
    assert.deepEqual(whole, payload);
  });
});
