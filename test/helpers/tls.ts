/**
 * A throwaway self-signed certificate for servers that speak TLS in tests (FTPS): made by the
 * real `openssl req -x509` into a temp dir of its own, which `close()` removes.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatResult, requireCommand, spawnBounded } from "./clients.js";

export interface SelfSignedOptions {
  /** Subject CN; default "underpass-test". */
  commonName?: string;
  /** subjectAltName DNS names; "localhost" unless given. 127.0.0.1 is always added as an IP SAN. */
  dnsNames?: readonly string[];
  /** Validity, in days (default 2). */
  days?: number;
}

export interface SelfSignedCert {
  /** The temp dir holding both files (mode 0700, root's). */
  readonly dir: string;
  /** PEM certificate. */
  readonly certFile: string;
  /** PEM private key, unencrypted (RSA 2048). */
  readonly keyFile: string;
  /** Removes the temp dir. */
  close(): Promise<void>;
}

/** Makes a self-signed RSA certificate and key with `openssl req -x509 -nodes`. */
export async function makeSelfSignedCert(opts: SelfSignedOptions = {}): Promise<SelfSignedCert> {
  const openssl = requireCommand("openssl");
  const dir = await mkdtemp(join(tmpdir(), "underpass-tls-"));
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  const close = () => rm(dir, { recursive: true, force: true });
  const names = opts.dnsNames ?? ["localhost"];
  const san = [...names.map((n) => `DNS:${n}`), "IP:127.0.0.1"].join(",");
  try {
    const r = await spawnBounded(
      openssl,
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        keyFile,
        "-out",
        certFile,
        "-days",
        String(opts.days ?? 2),
        "-subj",
        `/CN=${opts.commonName ?? "underpass-test"}`,
        "-addext",
        `subjectAltName=${san}`,
      ],
      { timeoutMs: 30_000 },
    );
    if (r.code !== 0) throw new Error(`openssl could not make a certificate\n${formatResult(r)}`);
  } catch (err) {
    await close();
    throw err;
  }
  return { dir, certFile, keyFile, close };
}
