import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  formatEprtCommand,
  formatPasvReply,
  formatPortCommand,
  parseEprtArgument,
  parseEpsvReply,
  parsePasvReply,
  parsePortArgument,
  splitCommand,
} from "../../cloud/ftp/commands.js";

describe("FTP control lines an FTP-aware mapping reads", () => {
  it("parses 227 replies in the forms servers send, and refuses bad numbers", () => {
    assert.deepEqual(parsePasvReply("227 Entering Passive Mode (10,255,255,1,117,48)."), {
      host: "10.255.255.1",
      port: 30000,
    });
    assert.deepEqual(parsePasvReply("227 Entering Passive Mode 10,0,0,5,4,1"), {
      host: "10.0.0.5",
      port: 1025,
    });
    assert.equal(parsePasvReply("227 Entering Passive Mode (10,0,0,256,4,1)."), null);
    assert.equal(parsePasvReply("227 Entering Passive Mode (10,0,0,1,0,0)."), null);
    assert.equal(parsePasvReply("227-Entering Passive Mode (10,0,0,1,4,1)."), null, "not a final line");
    assert.equal(parsePasvReply("200 (10,0,0,1,4,1)"), null);
  });

  it("writes 227 and PORT with the address given, and refuses a non-IPv4 one", () => {
    assert.equal(formatPasvReply("127.0.0.1", 30000), "227 Entering Passive Mode (127,0,0,1,117,48).\r\n");
    assert.equal(formatPortCommand("10.1.2.3", 40001), "PORT 10,1,2,3,156,65\r\n");
    assert.throws(() => formatPortCommand("fd00::1", 1));
  });

  it("parses 229 with any delimiter and refuses port 0 or garbage", () => {
    assert.equal(parseEpsvReply("229 Entering Extended Passive Mode (|||6446|)"), 6446);
    assert.equal(parseEpsvReply("229 Entering Extended Passive Mode (!!!6446!)"), 6446);
    assert.equal(parseEpsvReply("229 Entering Extended Passive Mode (|||0|)"), null);
    assert.equal(parseEpsvReply("229 Entering Extended Passive Mode (|||70000|)"), null);
    assert.equal(parseEpsvReply("229 no port here"), null);
  });

  it("parses a PORT argument only when it is exactly six numbers", () => {
    assert.deepEqual(parsePortArgument("127,0,0,1,200,1"), { host: "127.0.0.1", port: 51201 });
    assert.deepEqual(parsePortArgument(" 127,0,0,1,200,1 "), { host: "127.0.0.1", port: 51201 });
    assert.equal(parsePortArgument("x127,0,0,1,200,1"), null);
    assert.equal(parsePortArgument("127,0,0,1,200,1,5"), null);
    assert.equal(parsePortArgument("127,0,0,1,256,1"), null);
  });

  it("parses EPRT for both families and refuses a family/address mismatch", () => {
    assert.deepEqual(parseEprtArgument("|1|10.0.0.1|6446|"), { host: "10.0.0.1", port: 6446 });
    assert.deepEqual(parseEprtArgument("|2|fd00::1|6446|"), { host: "fd00::1", port: 6446 });
    assert.equal(parseEprtArgument("|2|10.0.0.1|6446|"), null);
    assert.equal(parseEprtArgument("|1|10.0.0.1|0|"), null);
    assert.equal(parseEprtArgument("|1|10.0.0.1|6446"), null);
    assert.equal(formatEprtCommand("fd00::1", 5), "EPRT |2|fd00::1|5|\r\n");
    assert.equal(formatEprtCommand("10.0.0.1", 5), "EPRT |1|10.0.0.1|5|\r\n");
  });

  it("finds the verb behind blanks, tabs and Telnet commands, as servers do", () => {
    assert.deepEqual(splitCommand("port 127,0,0,1,1,2"), {
      verb: "PORT",
      arg: "127,0,0,1,1,2",
      ambiguous: false,
    });
    assert.deepEqual(splitCommand("  PORT\t127,0,0,1,1,2"), {
      verb: "PORT",
      arg: "127,0,0,1,1,2",
      ambiguous: false,
    });
    assert.deepEqual(splitCommand("P\xff\xf1ORT 127,0,0,1,1,2"), {
      verb: "PORT",
      arg: "127,0,0,1,1,2",
      ambiguous: false,
    });
    assert.deepEqual(splitCommand("\xff\xfb\x01EPRT |1|1.2.3.4|5|"), {
      verb: "EPRT",
      arg: "|1|1.2.3.4|5|",
      ambiguous: false,
    });
    assert.deepEqual(splitCommand("PASV"), { verb: "PASV", arg: "", ambiguous: false });
  });
  it("tells a line with a stray Telnet IAC apart: servers read it differently", () => {
    assert.equal(splitCommand("P\xffAORT 10,0,0,9,200,1").ambiguous, true);
    assert.equal(splitCommand("PORT 10,0,0,9,200,1\xff").ambiguous, true);
    // RFC 854 commands the relay strips like a server does
    const nop = splitCommand("P\xff\xf1ORT 10,0,0,9,200,1");
    assert.deepEqual([nop.verb, nop.ambiguous], ["PORT", false]);
    const option = splitCommand("\xff\xfb\x01PORT 1,2,3,4,5,6");
    assert.deepEqual([option.verb, option.ambiguous], ["PORT", false]);
    assert.equal(splitCommand("RETR caf\xe9.txt").ambiguous, false, "latin-1 names are fine");
  });
});
