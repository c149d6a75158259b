#!/usr/bin/env node
/**
 * `underpass cloud | agent | demo | version | help`. Configuration comes from the
 * environment (DESIGN.md); bad configuration ends the process with a message that names
 * the variable, before anything listens. The commands that carry tunnel traffic tune V8's
 * heap for it first (heap-tuning.ts): a process-wide choice, so the command makes it.
 */

import { ValidationError } from "../shared/errors.js";
import { createLogger } from "../shared/logger.js";
import { VERSION } from "../shared/version.js";
import { startMemoryReducer, tuneHeapForTunnelTraffic } from "./heap-tuning.js";

/**
 * The admin commands (`underpass agents ...`, ADMIN_COMMANDS of admin/commands.ts), by name: their
 * module loads only when one runs. Each command loads only its own modules (dynamic imports): an
 * agent that loaded the relay, its admin API (fastify, the OpenAPI document) and the demo along
 * with itself held some 19 MiB more at rest, the code and objects of modules it never runs.
 * Keep it the same list as ADMIN_COMMANDS (test/e2e/admin-cli.test.ts runs every command).
 */
const ADMIN_COMMAND_NAMES: ReadonlySet<string> = new Set([
  "agents",
  "clients",
  "mappings",
  "connections",
  "relays",
  "audit",
  "export",
  "import",
]);

const USAGE = `underpass ${VERSION} — reach on-premise FTP and TCP services from the cloud

usage:
  underpass cloud     run the relay (tunnel endpoint, SOCKS5 endpoint, admin API)
  underpass agent     run the on-premise agent (outbound tunnel to the relay)
  underpass demo      relay, agent and a demo FTP server on loopback, ready for curl
  underpass version   print the version

admin (the relay's admin API at UNDERPASS_ADMIN_URL with UNDERPASS_ADMIN_TOKEN; --help on each):
  underpass agents list|add|rm|rotate
  underpass clients list|add|rm|rotate
  underpass mappings list|add|edit|rm|check|ftp-check
  underpass connections list|kill
  underpass audit list
  underpass export [--out file]
  underpass import <file> [--dry-run]

Configuration is read from UNDERPASS_* environment variables; see the README.
`;

async function main(argv: string[]): Promise<number> {
  const command = argv[0] ?? "help";
  if (ADMIN_COMMAND_NAMES.has(command)) {
    const { runAdminCommand } = await import("./admin/commands.js");
    return runAdminCommand(argv, {
      out: (text) => process.stdout.write(text),
      err: (text) => process.stderr.write(text),
      env: process.env,
    });
  }
  switch (command) {
    case "cloud": {
      tuneHeapForTunnelTraffic();
      const [{ relayConfigFromEnv }, { startRelay }] = await Promise.all([
        import("../cloud/config.js"),
        import("../cloud/relay.js"),
      ]);
      const logger = createLogger({ name: "underpass-cloud" });
      startMemoryReducer(logger);
      const relay = await startRelay(relayConfigFromEnv(process.env, logger));
      if (relay.generatedAdminToken) {
        process.stdout.write(
          `\nAdmin token (shown once; only its hash is kept in the data dir):\n  ${relay.generatedAdminToken}\n\n`,
        );
      }
      onSignals(async () => {
        await relay.close();
      });
      return -1;
    }
    case "agent": {
      tuneHeapForTunnelTraffic();
      const [{ agentConfigFromEnv }, { startAgent }] = await Promise.all([
        import("../agent/config.js"),
        import("../agent/agent.js"),
      ]);
      const logger = createLogger({ name: "underpass-agent" });
      startMemoryReducer(logger);
      const agent = startAgent(agentConfigFromEnv(process.env, logger));
      onSignals(() => agent.close());
      return -1;
    }
    case "demo": {
      tuneHeapForTunnelTraffic();
      const { runDemo } = await import("./demo/demo.js");
      await runDemo(argv.slice(1));
      return -1;
    }
    case "version":
    case "--version":
    case "-v":
      process.stdout.write(`${VERSION}\n`);
      return 0;
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return 0;
    default:
      process.stderr.write(`unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

function onSignals(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: string): void => {
    if (stopping) process.exit(1);
    stopping = true;
    process.stderr.write(`${signal}: shutting down\n`);
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ValidationError) {
      process.stderr.write(`underpass: ${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`underpass: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
