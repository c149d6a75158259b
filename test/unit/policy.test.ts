import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  allowAll,
  describePolicy,
  formatIp,
  type LookupFunction,
  type Policy,
  type PolicyDecision,
  parseIp,
  parsePolicy,
} from "../../agent/policy.js";
import { HostUnreachableError, NotAllowedError, ValidationError } from "../../shared/errors.js";

const EXAMPLE = "10.0.0.0/8:21,30000-30010;ftp.corp:21;[fd00::/8]:22;192.168.1.5:*;*.corp.example:21";

function allowed(policy: Policy, host: string, port: number): boolean {
  return policy.check(host, port).allowed;
}

function dialHost(decision: PolicyDecision): string {
  assert.ok(decision.allowed, `expected allowed, got: ${decision.allowed ? "" : decision.reason}`);
  return decision.dialHost;
}

function parseError(text: string): ValidationError {
  try {
    parsePolicy(text);
  } catch (err) {
    assert.ok(err instanceof ValidationError, `expected a ValidationError, got ${String(err)}`);
    assert.equal(err.code, "UP_ERR_VALIDATION");
    return err;
  }
  assert.fail(`"${text}" parsed without error`);
}

/** A lookup that answers from a table and records what it was asked. */
function fakeLookup(table: Record<string, string[]>): LookupFunction & { calls: string[] } {
  const calls: string[] = [];
  const fn = async (hostname: string, options: { all: true }) => {
    assert.deepEqual(options, { all: true });
    calls.push(hostname);
    const addresses = table[hostname];
    if (addresses === undefined) {
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
    }
    return addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
  };
  return Object.assign(fn, { calls });
}

describe("parsePolicy", () => {
  it("parses the documented example and describes it canonically", () => {
    const policy = parsePolicy(EXAMPLE);
    assert.equal(policy.allowsAll, false);
    assert.equal(policy.entries.length, 5);
    assert.equal(describePolicy(policy), `allow ${EXAMPLE.replaceAll(";", "; ")}`);
  });

  it("tolerates blanks around entries and a trailing semicolon", () => {
    const policy = parsePolicy("  10.0.0.0/8 : 21 ; ; ftp.corp:21 , 22 ;");
    assert.equal(describePolicy(policy), "allow 10.0.0.0/8:21; ftp.corp:21,22");
  });

  const garbage: Array<[string, RegExp]> = [
    ["10.0.0.1", /missing ":<ports>"/],
    ["[fd00::1]", /missing ":<ports>"/],
    ["10.0.0.1:", /no ports/],
    ["10.0.0.1:0", /outside 1-65535|not a port/],
    ["10.0.0.1:65536", /outside 1-65535/],
    ["10.0.0.1:30010-30000", /ends before it starts/],
    ["10.0.0.1:21,,22", /empty item/],
    ["10.0.0.1:21,*", /must stand alone/],
    ["10.0.0.1:ftp", /not a port/],
    ["10.0.0.1/33:21", /prefix "\/33" is not in 0-32/],
    ["10.0.0.1/:21", /prefix/],
    ["10.0.0.1/8/8:21", /prefix/],
    ["10.0.0.256:21", /not a valid IPv4 address/],
    ["10.1:21", /not a valid IPv4 address/],
    ["010.0.0.1:21", /not a valid IPv4 address/],
    ["fd00::1:22", /must be in brackets/],
    ["fd00::/8:22", /must be in brackets/],
    ["[fd00::1:22", /missing "]"/],
    ["[fd00::1]22", /unexpected "22"/],
    ["[fd00::/129]:22", /prefix "\/129" is not in 0-128/],
    ["[10.0.0.1]:21", /not a valid IPv6 address/],
    ["[fe80::1%eth0]:22", /zone id/],
    ["[::ffff:10.0.0.0/95]:21", /at least \/96/],
    ["[zz::1]:22", /not a valid IPv6 address/],
    ["*:21", /not a host/],
    [":21", /not a host/],
    ["bad_host!:21", /not a valid host name/],
    ["a..b:21", /not a valid host name/],
    ["-ftp.corp:21", /not a valid host name/],
    ["*.:21", /not a valid host name/],
    ["ftp.*.corp:21", /not a valid host name/],
    ["files.corp.0x10:21", /not a valid host name/],
    ["ftp.corp/24:21", /neither an IPv4 CIDR nor a host name/],
    [`${"a".repeat(64)}.corp:21`, /not a valid host name/],
  ];
  for (const [text, message] of garbage) {
    it(`refuses ${JSON.stringify(text)}`, () => {
      const err = parseError(text);
      assert.equal(err.issues.length, 1);
      assert.equal(err.issues[0]!.path, "UNDERPASS_ALLOW[0]");
      assert.match(err.issues[0]!.message, message);
      assert.ok(err.issues[0]!.message.startsWith(JSON.stringify(text)), "the issue names the entry");
    });
  }

  it("refuses an empty policy rather than allowing nothing or everything", () => {
    for (const text of ["", "  ", ";;"]) {
      const err = parseError(text);
      assert.equal(err.issues[0]!.path, "UNDERPASS_ALLOW");
      assert.match(err.issues[0]!.message, /no entries/);
    }
  });

  it("lists every bad entry with its index, not only the first", () => {
    const err = parseError("10.0.0.0/8:21;nonsense;ftp.corp:99999;[::1]:22");
    assert.deepEqual(
      err.issues.map((i) => i.path),
      ["UNDERPASS_ALLOW[1]", "UNDERPASS_ALLOW[2]"],
    );
    assert.match(err.message, /"nonsense"/);
    assert.match(err.message, /"ftp\.corp:99999"/);
  });
});

describe("Policy.check: addresses", () => {
  const policy = parsePolicy(EXAMPLE);

  it("allows an address inside a CIDR for a listed port or range, and only those ports", () => {
    assert.ok(allowed(policy, "10.1.2.3", 21));
    assert.ok(allowed(policy, "10.1.2.3", 30000));
    assert.ok(allowed(policy, "10.1.2.3", 30010));
    assert.ok(!allowed(policy, "10.1.2.3", 29999));
    assert.ok(!allowed(policy, "10.1.2.3", 30011));
    assert.ok(!allowed(policy, "10.1.2.3", 22));
    assert.equal(dialHost(policy.check("10.1.2.3", 21)), "10.1.2.3");
  });

  it("treats the first and last address of a network as inside, the neighbours as outside", () => {
    assert.ok(allowed(policy, "10.0.0.0", 21));
    assert.ok(allowed(policy, "10.255.255.255", 21));
    assert.ok(!allowed(policy, "9.255.255.255", 21));
    assert.ok(!allowed(policy, "11.0.0.0", 21));
  });

  it("treats a bare address as /32 and * as every port", () => {
    assert.ok(allowed(policy, "192.168.1.5", 1));
    assert.ok(allowed(policy, "192.168.1.5", 65535));
    assert.ok(!allowed(policy, "192.168.1.4", 21));
    assert.ok(!allowed(policy, "192.168.1.6", 21));
  });

  it("denies ports outside 1-65535 and non-integers with a reason", () => {
    for (const port of [0, -1, 65536, 21.5, Number.NaN]) {
      const decision = policy.check("192.168.1.5", port);
      assert.equal(decision.allowed, false);
      if (!decision.allowed) assert.match(decision.reason, /not in 1-65535/);
    }
  });

  it("accepts a base off the prefix boundary as its network", () => {
    const p = parsePolicy("10.0.0.1/8:21;10.9.9.9/31:22");
    assert.equal(describePolicy(p), "allow 10.0.0.0/8:21; 10.9.9.8/31:22");
    assert.ok(allowed(p, "10.200.0.1", 21));
    assert.ok(allowed(p, "10.9.9.8", 22));
    assert.ok(allowed(p, "10.9.9.9", 22));
    assert.ok(!allowed(p, "10.9.9.10", 22));
  });

  it("/0 covers every address of its family and no other", () => {
    const v4 = parsePolicy("0.0.0.0/0:21");
    assert.ok(allowed(v4, "0.0.0.0", 21));
    assert.ok(allowed(v4, "255.255.255.255", 21));
    assert.ok(!allowed(v4, "2001:db8::1", 21));
    const v6 = parsePolicy("[::/0]:21");
    assert.ok(allowed(v6, "2001:db8::1", 21));
    assert.ok(allowed(v6, "::", 21));
    assert.ok(!allowed(v6, "1.2.3.4", 21));
  });

  it("IPv6 entries: /128 for a bare address, brackets optional in requests, zone ids ignored", () => {
    const p = parsePolicy("[fd00::/8]:22;[2001:DB8::0:1]:21");
    assert.equal(describePolicy(p), "allow [fd00::/8]:22; [2001:db8::1]:21");
    assert.ok(allowed(p, "fd12:3456::1", 22));
    assert.ok(allowed(p, "[fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]", 22));
    assert.ok(!allowed(p, "fe00::1", 22));
    assert.ok(!allowed(p, "fd12::1", 23));
    assert.ok(allowed(p, "2001:db8:0:0:0:0:0:1", 21));
    assert.ok(!allowed(p, "2001:db8::2", 21));
    assert.equal(dialHost(p.check("[fd00::1]", 22)), "fd00::1");
    assert.equal(dialHost(p.check("fd00::1%eth0", 22)), "fd00::1%eth0");
  });

  it("IPv4-mapped IPv6 addresses are their IPv4 address, dialled as IPv4", () => {
    assert.equal(dialHost(policy.check("::ffff:10.0.0.1", 21)), "10.0.0.1");
    assert.equal(dialHost(policy.check("[::FFFF:a00:1]", 21)), "10.0.0.1");
    assert.equal(dialHost(policy.check("0:0:0:0:0:ffff:192.168.1.5", 2121)), "192.168.1.5");
    assert.ok(!allowed(policy, "::ffff:11.0.0.1", 21));
    // An IPv6 network does not cover mapped addresses; a mapped network is an IPv4 network.
    assert.ok(!allowed(parsePolicy("[::/0]:21"), "::ffff:10.0.0.1", 21));
    const mapped = parsePolicy("[::ffff:10.0.0.0/104]:21");
    assert.equal(describePolicy(mapped), "allow 10.0.0.0/8:21");
    assert.ok(allowed(mapped, "10.3.3.3", 21));
    assert.ok(allowed(mapped, "::ffff:10.3.3.3", 21));
  });

  it("an IPv4 entry covers the IPv4-mapped form of its addresses, in every spelling, and no more", () => {
    const p = parsePolicy("10.0.0.0/8:21;192.168.1.5:22");
    const mapped: Array<[string, string]> = [
      ["::ffff:10.0.0.1", "10.0.0.1"],
      ["[::ffff:10.0.0.1]", "10.0.0.1"],
      ["::FFFF:A00:1", "10.0.0.1"],
      ["0:0:0:0:0:ffff:0a00:0001", "10.0.0.1"],
      ["::ffff:10.255.255.255", "10.255.255.255"],
      ["::ffff:10.0.0.1%eth0", "10.0.0.1"],
    ];
    for (const [host, dial] of mapped) assert.equal(dialHost(p.check(host, 21)), dial, host);
    assert.equal(dialHost(p.check("::ffff:c0a8:105", 22)), "192.168.1.5");
    for (const host of [
      "::ffff:9.255.255.255",
      "::ffff:11.0.0.0",
      "::ffff:192.168.1.4",
      "::ffff:192.168.1.6",
    ]) {
      assert.ok(!allowed(p, host, 21) && !allowed(p, host, 22), host);
    }
    assert.ok(!allowed(p, "::ffff:10.0.0.1", 22), "the port still counts");
    // IPv4-compatible (::a.b.c.d, RFC 4291 §2.5.5.1) and NAT64 (64:ff9b::/96) addresses are IPv6
    assert.ok(!allowed(p, "::10.0.0.1", 21));
    assert.ok(!allowed(p, "64:ff9b::10.0.0.1", 21));
  });

  it("an IPv6 entry, even [::/0], covers no IPv4 address, mapped or not", () => {
    const p = parsePolicy("[::/0]:21");
    assert.ok(allowed(p, "::10.0.0.1", 21));
    assert.ok(allowed(p, "::fffe:a00:1", 21));
    for (const host of ["10.0.0.1", "::ffff:10.0.0.1", "0.0.0.0", "::ffff:0.0.0.0"]) {
      assert.ok(!allowed(p, host, 21), host);
    }
  });

  it("a mapped /96 is every IPv4 address; a longer mapped prefix is an IPv4 prefix", () => {
    const all = parsePolicy("[::ffff:0:0/96]:21");
    assert.equal(describePolicy(all), "allow 0.0.0.0/0:21");
    assert.ok(allowed(all, "1.2.3.4", 21));
    assert.ok(!allowed(all, "2001:db8::1", 21));
    const host = parsePolicy("[::ffff:192.168.1.5]:21;[::ffff:c0a8:200/120]:22");
    assert.equal(describePolicy(host), "allow 192.168.1.5:21; 192.168.2.0/24:22");
    assert.ok(allowed(host, "192.168.1.5", 21));
    assert.ok(allowed(host, "192.168.2.255", 22));
    assert.ok(!allowed(host, "192.168.3.0", 22));
  });

  it("IPv6 CIDRs: first and last address inside, the neighbours outside, at any prefix", () => {
    const cases: Array<[string, string, string, string, string]> = [
      // entry, first, last, just below, just above
      [
        "2001:db8::/32",
        "2001:db8::",
        "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
        "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
        "2001:db9::",
      ],
      [
        "2001:db8:0:0:8000::/65",
        "2001:db8::8000:0:0:0",
        "2001:db8::ffff:ffff:ffff:ffff",
        "2001:db8::7fff:ffff:ffff:ffff",
        "2001:db8:0:1::",
      ],
      [
        "2001:db8:ab80:ff80::/57",
        "2001:db8:ab80:ff80::",
        "2001:db8:ab80:ffff:ffff:ffff:ffff:ffff",
        "2001:db8:ab80:ff7f:ffff:ffff:ffff:ffff",
        "2001:db8:ab81::",
      ],
      [
        "fe80::/10",
        "fe80::",
        "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fec0::",
      ],
      [
        "2001:db8::/127",
        "2001:db8::",
        "2001:db8::1",
        "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
        "2001:db8::2",
      ],
    ];
    for (const [entry, first, last, below, above] of cases) {
      const p = parsePolicy(`[${entry}]:22`);
      assert.equal(describePolicy(p), `allow [${entry}]:22`);
      assert.ok(allowed(p, first, 22), `${first} in ${entry}`);
      assert.ok(allowed(p, last, 22), `${last} in ${entry}`);
      assert.ok(!allowed(p, below, 22), `${below} not in ${entry}`);
      assert.ok(!allowed(p, above, 22), `${above} not in ${entry}`);
      assert.ok(!allowed(p, first, 21), "the port still counts");
    }
  });

  it("an IPv6 base off the prefix boundary stands for its network", () => {
    const p = parsePolicy("[2001:db8::1/127]:22;[fd12:3456:789a::1/48]:22");
    assert.equal(describePolicy(p), "allow [2001:db8::/127]:22; [fd12:3456:789a::/48]:22");
    assert.ok(allowed(p, "2001:db8::", 22));
    assert.ok(allowed(p, "fd12:3456:789a:ffff::1", 22));
    assert.ok(!allowed(p, "fd12:3456:789b::", 22));
  });

  it("does not take IPv4 shorthand spellings for addresses or names", () => {
    for (const host of ["10.1", "167772161", "0x0a000001", "10.0.0.0x1", "010.0.0.1"]) {
      const decision = policy.check(host, 21);
      assert.equal(decision.allowed, false, host);
    }
  });
});

describe("Policy.check: names", () => {
  const policy = parsePolicy(EXAMPLE);

  it("matches names exactly and case-insensitively, dialling the name as asked", () => {
    assert.equal(dialHost(policy.check("ftp.corp", 21)), "ftp.corp");
    assert.equal(dialHost(policy.check("FTP.Corp", 21)), "FTP.Corp");
    assert.equal(dialHost(policy.check("ftp.corp.", 21)), "ftp.corp.");
    assert.ok(!allowed(policy, "ftp.corp", 22));
    assert.ok(!allowed(policy, "www.ftp.corp", 21));
    assert.ok(!allowed(policy, "ftp.corporate", 21));
  });

  it("a *. wildcard matches every subdomain but not the domain itself", () => {
    assert.ok(allowed(policy, "a.corp.example", 21));
    assert.ok(allowed(policy, "A.B.CORP.EXAMPLE.", 21));
    assert.ok(!allowed(policy, "corp.example", 21));
    assert.ok(!allowed(policy, "xcorp.example", 21));
    assert.ok(!allowed(policy, "a.corp.example.evil", 21));
    assert.ok(!allowed(policy, "a.corp.example", 22));
  });

  it("denies invalid names, with a NotAllowedError carrying the reason", () => {
    for (const host of ["", "ftp corp", "ftp.corp/x", "*.corp.example", "a..corp.example"]) {
      const decision = policy.check(host, 21);
      assert.equal(decision.allowed, false, host);
      if (!decision.allowed) {
        assert.ok(decision.error instanceof NotAllowedError);
        assert.match(decision.error.message, /^local policy: /);
      }
    }
  });

  it("never matches an address against a name entry", () => {
    const p = parsePolicy("localhost:21");
    assert.ok(!allowed(p, "127.0.0.1", 21));
    assert.ok(allowed(p, "LOCALHOST", 21));
  });
});

describe("Policy.authorize", () => {
  const policy = parsePolicy(EXAMPLE);

  it("allows a matching name as is, without resolving it", async () => {
    const lookup = fakeLookup({});
    assert.equal(dialHost(await policy.authorize("ftp.corp", 21, lookup)), "ftp.corp");
    assert.equal(dialHost(await policy.authorize("x.corp.example", 21, lookup)), "x.corp.example");
    assert.deepEqual(lookup.calls, []);
  });

  it("checks IP literals directly, without resolving them", async () => {
    const lookup = fakeLookup({});
    assert.equal(dialHost(await policy.authorize("10.0.0.7", 30005, lookup)), "10.0.0.7");
    assert.equal(dialHost(await policy.authorize("::ffff:10.0.0.7", 21, lookup)), "10.0.0.7");
    assert.equal((await policy.authorize("172.16.0.1", 21, lookup)).allowed, false);
    assert.deepEqual(lookup.calls, []);
  });

  it("resolves any other name and dials the first allowed address, exactly", async () => {
    const lookup = fakeLookup({ "nas.lan": ["172.16.0.9", "2001:db8::9", "10.20.30.40", "10.1.1.1"] });
    assert.equal(dialHost(await policy.authorize("nas.lan", 21, lookup)), "10.20.30.40");
    assert.deepEqual(lookup.calls, ["nas.lan"]);
  });

  it("matches resolved addresses against IPv6 CIDRs, and mapped ones against IPv4 CIDRs", async () => {
    const p = parsePolicy("[2001:db8:100::/40]:22;10.0.0.0/8:22");
    const lookup = fakeLookup({
      v6: ["2001:db8:ff::1", "2001:db8:1ff::7"],
      mapped: ["2001:db8::1", "::ffff:10.1.1.1"],
      outside: ["2001:db8:200::1", "::ffff:11.0.0.1", "::10.0.0.1"],
    });
    assert.equal(dialHost(await p.authorize("v6", 22, lookup)), "2001:db8:1ff::7");
    assert.equal(dialHost(await p.authorize("mapped", 22, lookup)), "10.1.1.1");
    const denied = await p.authorize("outside", 22, lookup);
    assert.ok(!denied.allowed);
    assert.match(denied.reason, /resolves to 2001:db8:200::1, 11\.0\.0\.1, ::a00:1, none allowed/);
  });

  it("dials an allowed resolved IPv6 address, and a mapped one as IPv4", async () => {
    const lookup = fakeLookup({ v6: ["fd00::abcd"], mapped: ["::ffff:10.9.8.7"] });
    assert.equal(dialHost(await policy.authorize("v6", 22, lookup)), "fd00::abcd");
    assert.equal(dialHost(await policy.authorize("mapped", 21, lookup)), "10.9.8.7");
  });

  it("denies a name whose addresses are all outside, naming them", async () => {
    const lookup = fakeLookup({
      "evil.example": ["8.8.8.8", "2001:db8::1", "1.1.1.1", "1.0.0.1", "9.9.9.9"],
    });
    const decision = await policy.authorize("evil.example", 21, lookup);
    assert.equal(decision.allowed, false);
    if (decision.allowed) return;
    assert.ok(decision.error instanceof NotAllowedError);
    assert.match(
      decision.reason,
      /evil\.example resolves to 8\.8\.8\.8, 2001:db8::1, 1\.1\.1\.1, 1\.0\.0\.1, \.\.\./,
    );
  });

  it("reports a name that does not resolve as unreachable, not as refused", async () => {
    const decision = await policy.authorize("missing.lan", 21, fakeLookup({}));
    assert.equal(decision.allowed, false);
    if (decision.allowed) return;
    assert.ok(decision.error instanceof HostUnreachableError);
    assert.match(decision.reason, /cannot resolve missing\.lan: ENOTFOUND/);
    const empty = await policy.authorize("empty.lan", 21, fakeLookup({ "empty.lan": [] }));
    assert.ok(!empty.allowed && empty.error instanceof HostUnreachableError);
  });

  it("does not resolve a name when no CIDR entry opens the port, nor an invalid name", async () => {
    const lookup = fakeLookup({ "nas.lan": ["10.0.0.1"] });
    const noWildcardPort = parsePolicy("10.0.0.0/8:21;ftp.corp:8080");
    const decision = await noWildcardPort.authorize("nas.lan", 8080, lookup);
    assert.ok(!decision.allowed && decision.error instanceof NotAllowedError);
    assert.equal((await policy.authorize("bad name", 21, lookup)).allowed, false);
    assert.equal((await policy.authorize("nas.lan", 0, lookup)).allowed, false);
    assert.deepEqual(lookup.calls, []);
  });

  it("resolves a name that only matches a name entry for other ports", async () => {
    const lookup = fakeLookup({ "ftp.corp": ["10.0.0.21"] });
    assert.equal(dialHost(await policy.authorize("ftp.corp", 30001, lookup)), "10.0.0.21");
    assert.deepEqual(lookup.calls, ["ftp.corp"]);
  });
});

describe("allowAll", () => {
  it("allows every host and port without resolving, and says so", async () => {
    const policy = allowAll();
    assert.equal(policy.allowsAll, true);
    assert.equal(dialHost(policy.check("anything.example", 1)), "anything.example");
    assert.equal(dialHost(policy.check("[2001:db8::1]", 65535)), "2001:db8::1");
    assert.equal(dialHost(policy.check("::ffff:10.0.0.1", 21)), "10.0.0.1");
    const lookup = fakeLookup({});
    assert.equal(dialHost(await policy.authorize("ftp.corp", 21, lookup)), "ftp.corp");
    assert.deepEqual(lookup.calls, []);
    assert.equal(policy.check("ftp.corp", 0).allowed, false);
    assert.match(describePolicy(policy), /UNDERPASS_ALLOW is unset/);
  });
});

describe("parseIp / formatIp", () => {
  const cases: Array<[string, string]> = [
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:0db8:0000:0001:0001:0001:0001:0001", "2001:db8:0:1:1:1:1:1"],
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["FE80::0:0:1", "fe80::1"],
    ["1:0:0:2:0:0:0:3", "1:0:0:2::3"],
    ["64:ff9b::192.0.2.33", "64:ff9b::c000:221"],
    ["192.0.2.1", "192.0.2.1"],
    ["::ffff:192.0.2.1", "192.0.2.1"],
  ];
  for (const [input, output] of cases) {
    it(`${input} -> ${output}`, () => {
      const ip = parseIp(input);
      assert.ok(ip);
      assert.equal(formatIp(ip), output);
    });
  }

  it("refuses what is not an IP literal", () => {
    for (const text of ["", "1.2.3", "1.2.3.4.5", "::g", "1::2::3", "ftp.corp", "[::1"]) {
      assert.equal(parseIp(text), undefined, text);
    }
  });
});
