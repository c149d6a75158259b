/**
 * A renewed certificate without a restart: the relay's TLS listeners (the tunnel's `wss`, the
 * admin HTTPS) read their certificate and key again on SIGHUP and when the files change, and
 * swap them in with `setSecureContext()`. New connections get the new pair; connections already
 * open keep theirs. A pair that cannot be used (unreadable, not PEM, a key that does not match
 * the certificate) is logged and the old one keeps serving.
 *
 * The files are watched through their directories, not themselves: a renewal that writes a new
 * file and renames it over the old one (certbot re-points the symlinks in `live/`; Kubernetes
 * swaps a `..data` link) replaces the inode a file watch would follow, and the directory sees
 * every such change. Changes are debounced, so a certificate and a key replaced one after the
 * other are read once, together; if a reload falls between the two, the pair does not match,
 * the old one stays, and the next change reads it again.
 */

import { X509Certificate } from "node:crypto";
import { type FSWatcher, watch } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import { createSecureContext, type SecureContextOptions } from "node:tls";
import type { Logger } from "../shared/logger.js";
import type { RelayEvents, TlsListenerName, TlsReloadTrigger } from "./events.js";

/** A listener whose certificate can be swapped: an `https.Server` or a `tls.Server`. */
export interface TlsListener {
  readonly name: TlsListenerName;
  readonly certFile: string;
  readonly keyFile: string;
  readonly server: { setSecureContext(options: SecureContextOptions): void };
}

export interface TlsReloadSettings {
  /** Watch the files' directories (UNDERPASS_TLS_WATCH); SIGHUP works either way. */
  readonly watch: boolean;
  /** Quiet time after the last change before the files are read, in ms. */
  readonly debounceMs: number;
}

export const DEFAULT_TLS_RELOAD: TlsReloadSettings = { watch: true, debounceMs: 1000 };

export interface TlsReloadOptions {
  readonly listeners: readonly TlsListener[];
  readonly settings: TlsReloadSettings;
  readonly logger: Logger;
  readonly events: Pick<RelayEvents, "tlsReloaded">;
}

export interface TlsReloader {
  /** Read every listener's pair again now; resolves once done (each outcome is published). */
  reload(trigger: TlsReloadTrigger): Promise<void>;
  close(): void;
}

/** SHA-256 fingerprint of a PEM certificate (its first one), as openssl prints it. */
export function certificateFingerprint(pem: Buffer): string {
  return new X509Certificate(pem).fingerprint256;
}

export function reloadCertificates(o: TlsReloadOptions): TlsReloader {
  const log = o.logger.child({ component: "tls" });
  const watchers: FSWatcher[] = [];
  const pending = new Set<TlsListener>();
  let timer: NodeJS.Timeout | null = null;
  let chain: Promise<void> = Promise.resolve();
  let closed = false;

  const publish = (
    listener: TlsListener,
    trigger: TlsReloadTrigger,
    outcome: { fingerprint: string } | { error: string },
  ): void => {
    const ch = o.events.tlsReloaded;
    if (!ch.active) return;
    ch.publish({
      relayId: ch.relayId,
      listener: listener.name,
      trigger,
      ok: "fingerprint" in outcome,
      fingerprint: "fingerprint" in outcome ? outcome.fingerprint : null,
      error: "error" in outcome ? outcome.error : null,
    });
  };

  const reloadOne = async (l: TlsListener, trigger: TlsReloadTrigger): Promise<void> => {
    const files = { listener: l.name, certFile: l.certFile, keyFile: l.keyFile, trigger };
    let fingerprint: string;
    try {
      const [cert, key] = await Promise.all([readFile(l.certFile), readFile(l.keyFile)]);
      // both throw on what cannot serve: not PEM, a key that is not the certificate's
      fingerprint = certificateFingerprint(cert);
      createSecureContext({ cert, key });
      if (closed) return;
      l.server.setSecureContext({ cert, key });
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      log.error(
        { ...files, err: error },
        `TLS: the ${l.name} listener's new certificate and key cannot be used; the old ones keep serving`,
      );
      publish(l, trigger, { error });
      return;
    }
    log.info({ ...files, fingerprint }, `TLS: the ${l.name} listener serves the certificate read now`);
    publish(l, trigger, { fingerprint });
  };

  /** Reloads run one after another, so the last read is the one that serves. */
  const run = (listeners: readonly TlsListener[], trigger: TlsReloadTrigger): Promise<void> => {
    chain = chain.then(async () => {
      for (const l of listeners) await reloadOne(l, trigger);
    });
    return chain;
  };

  const changed = (affected: readonly TlsListener[]): void => {
    if (closed) return;
    for (const l of affected) pending.add(l);
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      const due = [...pending];
      pending.clear();
      void run(due, "watch");
    }, o.settings.debounceMs);
    timer.unref();
  };

  if (o.settings.watch) {
    const byDir = new Map<string, Map<string, TlsListener[]>>();
    for (const l of o.listeners) {
      for (const file of [l.certFile, l.keyFile]) {
        const dir = dirname(resolve(file));
        const names = byDir.get(dir) ?? new Map<string, TlsListener[]>();
        byDir.set(dir, names);
        const of = names.get(basename(file)) ?? [];
        if (!of.includes(l)) of.push(l);
        names.set(basename(file), of);
      }
    }
    for (const [dir, names] of byDir) {
      const everyone = [...new Set([...names.values()].flat())];
      try {
        const w = watch(dir, { persistent: false }, (_event, filename) => {
          // without a name the platform did not say which file: read all of this directory's
          const name = filename === null ? null : String(filename);
          // a symlink swap (certbot, Kubernetes) renames a name other than the files'
          changed(name === null ? everyone : (names.get(name) ?? everyone));
        });
        w.on("error", (err) =>
          log.warn(
            { dir, err: err.message },
            "TLS: the certificate directory cannot be watched any more; SIGHUP still reloads",
          ),
        );
        watchers.push(w);
      } catch (err) {
        log.warn(
          { dir, err: err instanceof Error ? err.message : String(err) },
          "TLS: the certificate directory cannot be watched; SIGHUP reloads",
        );
      }
    }
  }

  const onHangup = (): void => {
    log.info("SIGHUP: reading the TLS certificates again");
    void run(o.listeners, "sighup");
  };
  process.on("SIGHUP", onHangup);

  return {
    reload: (trigger) => run(o.listeners, trigger),
    close() {
      closed = true;
      process.off("SIGHUP", onHangup);
      if (timer !== null) clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}
