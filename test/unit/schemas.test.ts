import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { z } from "zod";
import {
  agentCreateBody,
  applyMappingPatch,
  clientCreateBody,
  description,
  hostName,
  hostProblem,
  issuesOf,
  location,
  mappingCreateBody,
  mappingPatchBody,
  name,
  portSpec,
} from "../../cloud/admin/schemas.js";

function issues(schema: z.ZodType, input: unknown) {
  const r = schema.safeParse(input);
  assert.equal(r.success, false, `expected ${JSON.stringify(input)} to fail`);
  return issuesOf(r.error!);
}

const MAPPING = { virtualHost: "ftp.example", virtualPort: 21, internalHost: "10.0.0.5", internalPort: 21 };

describe("portSpec", () => {
  it("turns ports and ranges into PortRanges", () => {
    assert.deepEqual(portSpec.parse(21), { start: 21, end: 21 });
    assert.deepEqual(portSpec.parse("21"), { start: 21, end: 21 });
    assert.deepEqual(portSpec.parse("30000-30010"), { start: 30000, end: 30010 });
    assert.deepEqual(portSpec.parse(65535), { start: 65535, end: 65535 });
  });

  it("rejects with the message of parsePortRange", () => {
    assert.deepEqual(issues(portSpec, 0), [{ path: "", message: "port 0 is not in 1-65535" }]);
    assert.deepEqual(issues(portSpec, 65536), [{ path: "", message: "port 65536 is not in 1-65535" }]);
    assert.deepEqual(issues(portSpec, 21.5), [{ path: "", message: "port 21.5 is not in 1-65535" }]);
    assert.deepEqual(issues(portSpec, "30010-30000"), [
      { path: "", message: '"30010-30000" ends before it starts' },
    ]);
    assert.deepEqual(issues(portSpec, "ftp"), [
      { path: "", message: '"ftp" is not a port or a range like 30000-30010' },
    ]);
    assert.match(issues(portSpec, true)[0]!.message, /expected a port/);
    assert.deepEqual(issues(portSpec, undefined), [{ path: "", message: "required" }]);
  });
});

describe("hostName", () => {
  it("normalises DNS names, IPv4 and IPv6", () => {
    assert.equal(hostName.parse("FTP.Example.COM"), "ftp.example.com");
    assert.equal(hostName.parse("ftp.corp."), "ftp.corp");
    assert.equal(hostName.parse("  files_01.corp "), "files_01.corp");
    assert.equal(hostName.parse("localhost"), "localhost");
    assert.equal(hostName.parse("10.0.0.5"), "10.0.0.5");
    assert.equal(hostName.parse("[::1]"), "::1");
    assert.equal(hostName.parse("2001:DB8:0:0:0:0:0:1"), "2001:db8::1");
    assert.equal(hostName.parse("[FD00:0:0::0021]"), "fd00::21");
  });

  it("rejects what is neither", () => {
    for (const bad of [
      "",
      "ftp..corp",
      "-ftp.corp",
      "ftp.corp-",
      "ftp corp",
      "ftp:21",
      "1.2.3",
      "10.0.0.256",
      "010.0.0.1",
      "[10.0.0.1]",
      "[::1",
      "fe80::1%eth0",
      "bücher.example",
      `${"a".repeat(64)}.corp`,
      `${"abc.".repeat(64)}corp`,
    ]) {
      assert.notEqual(hostProblem(bad), undefined, `${bad} should be rejected`);
      assert.equal(hostName.safeParse(bad).success, false, bad);
    }
    assert.match(issues(hostName, "ftp corp")[0]!.message, /not a valid host name/);
    assert.deepEqual(issues(hostName, 42), [{ path: "", message: "expected a host name or an IP address" }]);
  });
});

describe("location, name, description", () => {
  it("location defaults and is restricted", () => {
    assert.equal(location.parse(undefined), "default");
    assert.equal(location.parse("plant-1.eu_west"), "plant-1.eu_west");
    assert.equal(location.safeParse("a b").success, false);
    assert.equal(location.safeParse("x".repeat(65)).success, false);
    assert.equal(location.safeParse("").success, false);
    assert.equal(location.safeParse("x".repeat(64)).success, true);
  });

  it("name is trimmed, non-empty, bounded and has no control characters", () => {
    assert.equal(name.parse("  ERP  "), "ERP");
    assert.deepEqual(issues(name, "   "), [{ path: "", message: "name is empty" }]);
    assert.equal(name.safeParse("x".repeat(129)).success, false);
    assert.equal(name.safeParse("a\nb").success, false);
    assert.deepEqual(issues(name, undefined), [{ path: "", message: "required" }]);
  });

  it("description is bounded", () => {
    assert.equal(description.parse(""), "");
    assert.equal(description.safeParse("x".repeat(1025)).success, false);
  });
});

describe("agent and client bodies", () => {
  it("accept name and optional location", () => {
    assert.deepEqual(agentCreateBody.parse({ name: "a" }), { name: "a", location: "default" });
    assert.deepEqual(clientCreateBody.parse({ name: "c", location: "plant" }), {
      name: "c",
      location: "plant",
    });
  });

  it("reject unknown fields, each on its own path", () => {
    assert.deepEqual(issues(agentCreateBody, { name: "a", token: "x", extra: 1 }), [
      { path: "token", message: "unknown field" },
      { path: "extra", message: "unknown field" },
    ]);
  });

  it("reject a body that is not an object", () => {
    assert.deepEqual(issues(clientCreateBody, [1]), [{ path: "", message: "expected a JSON object" }]);
    assert.deepEqual(issues(clientCreateBody, undefined), [{ path: "", message: "expected a JSON object" }]);
  });
});

describe("mappingCreateBody", () => {
  it("applies defaults and normalises", () => {
    assert.deepEqual(
      mappingCreateBody.parse({
        ...MAPPING,
        virtualHost: "FTP.Example",
        virtualPort: "21",
        internalHost: "[::1]",
      }),
      {
        virtualHost: "ftp.example",
        virtualPort: { start: 21, end: 21 },
        internalHost: "::1",
        internalPort: { start: 21, end: 21 },
        location: "default",
        protocol: "tcp",
        description: "",
      },
    );
  });

  it("accepts equal-length ranges, shifted", () => {
    const m = mappingCreateBody.parse({
      ...MAPPING,
      virtualPort: "30000-30010",
      internalPort: "40000-40010",
    });
    assert.deepEqual(m.internalPort, { start: 40000, end: 40010 });
  });

  it("puts a range length mismatch on internalPort", () => {
    assert.deepEqual(
      issues(mappingCreateBody, { ...MAPPING, virtualPort: "30000-30010", internalPort: "30000-30009" }),
      [
        {
          path: "internalPort",
          message: "covers 10 port(s) but virtualPort covers 11; both sides of a range have the same length",
        },
      ],
    );
    assert.equal(
      issues(mappingCreateBody, { ...MAPPING, virtualPort: 21, internalPort: "21-22" })[0]?.path,
      "internalPort",
    );
  });

  it("reports every bad field on its path", () => {
    const found = issues(mappingCreateBody, {
      virtualHost: "bad host",
      virtualPort: 70000,
      internalPort: 21,
      protocol: "udp",
      colour: "red",
    });
    assert.deepEqual(found.map((i) => i.path).sort(), [
      "colour",
      "internalHost",
      "protocol",
      "virtualHost",
      "virtualPort",
    ]);
    assert.equal(found.find((i) => i.path === "virtualPort")?.message, "port 70000 is not in 1-65535");
    assert.equal(found.find((i) => i.path === "internalHost")?.message, "required");
    assert.equal(found.find((i) => i.path === "protocol")?.message, 'expected "tcp" or "ftp"');
  });
});

describe("mapping PATCH", () => {
  const current = mappingCreateBody.parse({
    ...MAPPING,
    virtualPort: "30000-30010",
    internalPort: "30000-30010",
  });

  it("the patch body itself is strict and has no defaults", () => {
    assert.deepEqual(mappingPatchBody.parse({}), {});
    assert.deepEqual(mappingPatchBody.parse({ description: "x" }), { description: "x" });
    assert.deepEqual(issues(mappingPatchBody, { id: "mp_1" }), [{ path: "id", message: "unknown field" }]);
  });

  it("merges and re-validates the whole", () => {
    const r = applyMappingPatch(current, { virtualPort: "31000-31010", internalHost: "FILES.corp" });
    assert.ok(r.success);
    assert.deepEqual(r.data, {
      ...current,
      virtualPort: { start: 31000, end: 31010 },
      internalHost: "files.corp",
    });
  });

  it("catches a range mismatch created by changing one side only", () => {
    const r = applyMappingPatch(current, { virtualPort: 21 });
    assert.equal(r.success, false);
    assert.deepEqual(
      issuesOf(r.error!).map((i) => i.path),
      ["internalPort"],
    );
  });

  it("rejects unknown fields and bad values before merging", () => {
    const r = applyMappingPatch(current, { virtualPort: 0, createdAt: "now" });
    assert.equal(r.success, false);
    assert.deepEqual(issuesOf(r.error!), [
      { path: "virtualPort", message: "port 0 is not in 1-65535" },
      { path: "createdAt", message: "unknown field" },
    ]);
    assert.equal(applyMappingPatch(current, "nope").success, false);
  });
});
