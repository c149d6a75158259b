/**
 * Credentials the relay issues to itself for a diagnosis that goes through its own SOCKS
 * endpoint (the FTP check): valid for one location, for a short time, in this process only.
 * Their usernames contain `~`, which no client's username has (they are `a-z 0-9 -`).
 */
import { randomBytes, timingSafeEqual } from "node:crypto";

export interface CheckCredential {
  readonly username: string;
  readonly password: string;
  /** Ends it before its time. */
  revoke(): void;
}

interface Issued {
  readonly password: Buffer;
  readonly location: string;
  readonly expires: number;
}

export class CheckCredentials {
  readonly #issued = new Map<string, Issued>();

  /** A credential for `location`, valid for `ttlMs`. */
  issue(location: string, ttlMs: number): CheckCredential {
    this.#sweep();
    const username = `~check~${randomBytes(8).toString("hex")}`;
    const password = randomBytes(18).toString("base64url");
    this.#issued.set(username, { password: Buffer.from(password), location, expires: Date.now() + ttlMs });
    return { username, password, revoke: () => this.#issued.delete(username) };
  }

  /** The location a live credential stands for, or null (not one of ours, wrong, expired). */
  verify(username: string, password: string): { location: string } | null {
    if (!username.startsWith("~check~")) return null;
    const issued = this.#issued.get(username);
    if (issued === undefined) return null;
    if (issued.expires < Date.now()) {
      this.#issued.delete(username);
      return null;
    }
    const given = Buffer.from(password);
    if (given.length !== issued.password.length || !timingSafeEqual(given, issued.password)) return null;
    return { location: issued.location };
  }

  #sweep(): void {
    const t = Date.now();
    for (const [u, i] of this.#issued) if (i.expires < t) this.#issued.delete(u);
  }
}
