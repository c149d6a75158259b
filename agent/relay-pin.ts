/**
 * The relay's certificate pinned by its SHA-256 fingerprint (UNDERPASS_RELAY_FINGERPRINT): the
 * hash of the leaf certificate's DER bytes, as `openssl x509 -noout -fingerprint -sha256` prints
 * it. Several may be given, comma-separated, for the overlap of a renewal. A pin replaces CA
 * validation (the pinned certificate may be self-signed; its names and dates are not checked:
 * the exact certificate is), unless UNDERPASS_CA is set as well, in which case both must hold.
 * The pin is checked on the TLS connection before the hello, so the agent's token never goes to
 * a relay that shows another certificate.
 */
import type { TLSSocket } from "node:tls";
import { AuthError, ValidationError } from "../shared/errors.js";

/** The fingerprints the agent accepts, 64 lowercase hex digits each. */
export interface RelayPins {
  readonly fingerprints: ReadonlySet<string>;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * UNDERPASS_RELAY_FINGERPRINT: SHA-256 fingerprints, hex with or without colons, any case,
 * comma-separated. `variable` names the variable in errors.
 */
export function parsePins(value: string, variable: string): RelayPins {
  const fingerprints = new Set<string>();
  const bad: string[] = [];
  for (const entry of value.split(",")) {
    const text = entry.trim();
    if (text === "") continue;
    const hex = text.replaceAll(":", "").toLowerCase();
    if (SHA256_HEX.test(hex)) fingerprints.add(hex);
    else bad.push(text);
  }
  if (bad.length > 0 || fingerprints.size === 0) {
    const why =
      bad.length > 0
        ? `${bad.map((b) => `"${b}"`).join(", ")} is not a SHA-256 fingerprint (64 hex digits, colons allowed: openssl x509 -noout -fingerprint -sha256 -in relay.crt)`
        : "names no fingerprint";
    throw new ValidationError(`${variable}: ${why}`, [{ path: variable, message: why }]);
  }
  return { fingerprints };
}

/** A fingerprint as openssl and Node print it: `AB:CD:…`. */
export function formatFingerprint(hex: string): string {
  return (hex.toUpperCase().match(/../g) ?? []).join(":");
}

/**
 * Checks the leaf certificate of `socket` against `pins`; throws AuthError naming the
 * fingerprint it saw when it is not one of them.
 */
export function checkPinnedCertificate(socket: TLSSocket, pins: RelayPins, relay: string): void {
  const cert = socket.getPeerCertificate();
  const seen =
    typeof cert.fingerprint256 === "string" ? cert.fingerprint256.replaceAll(":", "").toLowerCase() : "";
  if (seen !== "" && pins.fingerprints.has(seen)) return;
  const shown = seen === "" ? "no certificate" : `SHA-256 ${formatFingerprint(seen)}`;
  const pinned = [...pins.fingerprints].map(formatFingerprint).join(", ");
  throw new AuthError(
    `the relay at ${relay} presented ${shown}, which UNDERPASS_RELAY_FINGERPRINT does not pin (it pins ${pinned})`,
  );
}
