import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Secrets are generated here with 192 bits of entropy, so a SHA-256 digest is enough to keep
 * them at rest: nothing shorter than the secret itself can be brute-forced out of it.
 */
export function generateSecret(prefix: string): string {
  return `${prefix}_${randomBytes(24).toString("base64url")}`;
}

/** SHA-256 hex of a secret, the only form in which it is stored. */
export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

/** Constant-time comparison of a presented secret with a stored hash. */
export function secretMatches(secret: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(secret), "hex");
  const b = Buffer.from(storedHash, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}
