/**
 * Runs the FTP check (check.ts) for the admin API: a credential for the mapping's location,
 * issued for the check's duration, and connections through the relay's own SOCKS endpoint, so
 * the check takes exactly the path a client's flow takes.
 */
import type { AddressInfo, Socket } from "node:net";
import type { FtpChecker, FtpCheckLogin } from "../admin/deps.js";
import type { CheckCredentials } from "../socks/check-credentials.js";
import { socksConnect } from "../socks/client.js";
import type { MappingRecord, Store } from "../store/store.js";
import { type FtpCheckAnswer, runFtpCheck } from "./check.js";

export interface FtpCheckRunnerOptions {
  readonly store: Store;
  readonly credentials: CheckCredentials;
  /** Where the SOCKS endpoint listens (known once it does). */
  readonly socksAddress: () => AddressInfo;
  /** Bound on each step (and each SOCKS handshake), in ms. */
  readonly stepTimeoutMs: number;
}

/** The address to reach a listener at from this host: a wildcard listener answers on loopback. */
function reachable(a: AddressInfo): string {
  if (a.address === "0.0.0.0") return "127.0.0.1";
  if (a.address === "::") return "::1";
  return a.address;
}

export class FtpCheckRunner implements FtpChecker {
  readonly #o: FtpCheckRunnerOptions;

  constructor(o: FtpCheckRunnerOptions) {
    this.#o = o;
  }

  async check(mapping: MappingRecord, login: FtpCheckLogin): Promise<FtpCheckAnswer> {
    const o = this.#o;
    // every step may take its full bound: greeting, login, two passive modes, active mode
    const credential = o.credentials.issue(mapping.location, o.stepTimeoutMs * 12);
    const sockets = new Set<Socket>();
    try {
      const socks = o.socksAddress();
      return await runFtpCheck({
        mapping,
        mappings: await o.store.mappingsOf(mapping.location),
        ...login,
        stepTimeoutMs: o.stepTimeoutMs,
        async connect(host, port) {
          const { socket } = await socksConnect({
            proxyHost: reachable(socks),
            proxyPort: socks.port,
            username: credential.username,
            password: credential.password,
            host,
            port,
            timeoutMs: o.stepTimeoutMs,
          });
          sockets.add(socket);
          return socket;
        },
      });
    } finally {
      credential.revoke();
      for (const s of sockets) s.destroy();
    }
  }
}
