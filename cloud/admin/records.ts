/** How the admin API names and dates the records it creates. */
import { randomBytes } from "node:crypto";

/** `ag_`, `cl_` or `mp_` and 64 random bits in hex: unguessable, and unique without a counter. */
export function newId(prefix: "ag" | "cl" | "mp"): string {
  return `${prefix}_${randomBytes(8).toString("hex")}`;
}

/** Now, in the ISO 8601 form the store keeps. */
export function now(): string {
  return new Date().toISOString();
}
