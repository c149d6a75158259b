import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type CommandLine, FtpCommandReader } from "../../cli/demo/ftp-command-reader.js";
import { seededRandom } from "../helpers/seeded-random.js";

const IAC = 0xff;
const line = (text: string): CommandLine => ({ kind: "line", text });
const TOO_LONG: CommandLine = { kind: "too-long" };

function bytes(...parts: Array<string | number[]>): Buffer {
  return Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "utf8") : Buffer.from(p))));
}

function readAll(input: Buffer, chunks: readonly number[], maxLine = 64): CommandLine[] {
  const reader = new FtpCommandReader(maxLine);
  const out: CommandLine[] = [];
  let at = 0;
  for (const end of [...chunks, input.length]) {
    out.push(...reader.push(input.subarray(at, end)));
    at = end;
  }
  return out;
}

/** The lines of `input` read whole, split in two at every offset, split in three, and byte by byte. */
function assertLines(input: Buffer, expected: readonly CommandLine[], maxLine = 64): void {
  assert.deepEqual(readAll(input, [], maxLine), expected, "whole");
  for (let i = 0; i <= input.length; i++) {
    assert.deepEqual(readAll(input, [i], maxLine), expected, `split at ${i}`);
    for (let j = i; j <= input.length; j += 3) assert.deepEqual(readAll(input, [i, j], maxLine), expected);
  }
  const each = Array.from({ length: input.length }, (_, i) => i + 1);
  assert.deepEqual(readAll(input, each, maxLine), expected, "byte by byte");
}

describe("FtpCommandReader", () => {
  it("ends lines at CRLF or a bare LF, and keeps a CR inside a line", () => {
    assertLines(bytes("USER anonymous\r\nPASS a b \r\nNOOP\n\r\nSTOR a\rb\r\n"), [
      line("USER anonymous"),
      line("PASS a b "),
      line("NOOP"),
      line(""),
      line("STOR a\rb"),
    ]);
  });

  it("holds an unfinished line until its end comes", () => {
    const reader = new FtpCommandReader(64);
    assert.deepEqual(reader.push(bytes("RETR fi")), []);
    assert.deepEqual(reader.push(bytes("le\r")), []);
    assert.deepEqual(reader.push(bytes("\n")), [line("RETR file")]);
  });

  it("decodes UTF-8 split anywhere (RFC 2640)", () => {
    assertLines(bytes("RETR café/日本.txt\r\n"), [line("RETR café/日本.txt")]);
  });

  it("takes out Telnet commands wherever they fall; IAC IAC is a data byte", () => {
    // IAC IP, IAC DM, IAC DO ECHO, IAC WILL SGA inside a verb, IAC NOP
    assertLines(
      bytes(
        [IAC, 0xf4, IAC, 0xf2],
        "AB",
        [IAC, 0xfd, 0x01],
        "OR\r\n",
        "NO",
        [IAC, 0xfb, 0x03, IAC, 0xf1],
        "OP\r\n",
      ),
      [line("ABOR"), line("NOOP")],
    );
    // the option byte after WILL/WONT/DO/DONT is taken out even when it looks like LF or IAC
    assertLines(bytes("A", [IAC, 0xfe, 0x0a], "B", [IAC, 0xfc, IAC], "C\r\n"), [line("ABC")]);
    // IAC IAC is 0xff, which UTF-8 cannot decode
    assertLines(bytes("RETR x", [IAC, IAC], "y\r\n"), [line("RETR x\ufffdy")]);
  });

  it("refuses a line longer than maxLine bytes (CR and Telnet-free bytes counted), once, then reads on", () => {
    assertLines(bytes("12345678\n"), [line("12345678")], 8);
    assertLines(bytes("1234567\r\n"), [line("1234567")], 8);
    assertLines(bytes("12345678\r\n"), [TOO_LONG], 8);
    assertLines(bytes("123456789\nNOOP\r\n"), [TOO_LONG, line("NOOP")], 8);
    assertLines(bytes("1234", [IAC, 0xf1, IAC, 0xfd, 0x01], "5678\n"), [line("12345678")], 8);
    assertLines(
      bytes(`${"x".repeat(40)}\r\n${"y".repeat(9)}\r\nQUIT\r\n`),
      [TOO_LONG, TOO_LONG, line("QUIT")],
      8,
    );
  });

  it("keeps at most maxLine bytes of a line that never ends", () => {
    const reader = new FtpCommandReader(4096);
    const junk = Buffer.alloc(1 << 16, "a");
    for (let i = 0; i < 64; i++) assert.deepEqual(reader.push(junk), []); // 4 MiB, no line end
    assert.deepEqual(reader.push(bytes("\nNOOP\r\n")), [TOO_LONG, line("NOOP")]);
  });

  it("never throws on garbage, reads it the same however it is split, and bounds every line", () => {
    const next = seededRandom(0x2545f491);
    for (let n = 0; n < 200; n++) {
      // bytes biased towards the interesting ones: IAC, the Telnet commands, CR and LF
      const special = [IAC, 0xfb, 0xfe, 0xf1, 0x0d, 0x0a];
      const input = Buffer.from(
        Array.from({ length: next() % 300 }, () => (next() % 3 === 0 ? special[next() % 6]! : next() & 0xff)),
      );
      const whole = readAll(input, [], 16);
      const cuts = Array.from({ length: next() % 8 }, () => next() % (input.length + 1)).sort(
        (a, b) => a - b,
      );
      assert.deepEqual(readAll(input, cuts, 16), whole, `input ${input.toString("hex")} cut at ${cuts}`);
      for (const l of whole) {
        if (l.kind === "line") assert.ok(l.text.length <= 16, "a line is bounded");
      }
    }
  });
});
