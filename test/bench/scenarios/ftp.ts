/**
 * FTP: one file from a real vsftpd in passive mode, downloaded by curl through each peer
 * (`--proxy socks5h://...`; straight for `direct`). Underpass gets two mappings, the control
 * port as virtual port 21 and the passive range as itself. The download's SHA-256 is checked.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { curlFtp, formatResult } from "../../helpers/clients.js";
import { freePortRange } from "../../helpers/ports.js";
import { makeFile, sha256File, startVsftpd } from "../../helpers/vsftpd.js";
import { type RunContext, withDeadline } from "../context.js";
import { FTP_DOWNLOAD } from "../figures.js";
import type { PeerId } from "../peers/peer.js";
import { benchChildren } from "../processes.js";
import type { Destination } from "../socks5-client.js";
import { MIB } from "../stats.js";

const FILE_NAME = "bench.bin";
/** Passive ports vsftpd may choose from. */
const PASV_PORTS = 10;

export async function runFtp(ctx: RunContext): Promise<void> {
  if (!ctx.options.figures.has(FTP_DOWNLOAD.id)) return;
  const size = ctx.options.ftpBytes;
  const pasv = await freePortRange(PASV_PORTS);
  const server = await startVsftpd({ pasvPorts: pasv, allowUpload: false, registry: benchChildren });
  try {
    ctx.log(`ftp: writing a ${(size / MIB).toFixed(0)} MiB file for vsftpd`);
    const file = await makeFile(server.root, FILE_NAME, size);
    const routes = new Map<PeerId, Destination>();
    for (const peer of ctx.peers) {
      const control = await peer.expose({
        name: "ftp",
        host: server.host,
        ports: { start: server.port, end: server.port },
        virtualStart: 21,
      });
      await peer.expose({ name: "ftp", host: server.host, ports: pasv });
      routes.set(peer.id, control);
    }
    const output = join(ctx.scratch, "ftp-download.bin");
    for (let rep = 1; rep <= ctx.options.reps; rep++) {
      for (const peer of ctx.peers) {
        const control = routes.get(peer.id)!;
        try {
          const r = await withDeadline(
            curlFtp({
              url: `ftp://${control.host}:${control.port}/${FILE_NAME}`,
              ...(peer.proxy ? { socks: { ...peer.proxy, remoteDns: true } } : {}),
              output,
              extraArgs: ["-w", "%{size_download} %{time_total}"],
              timeoutMs: 600_000,
              registry: benchChildren,
            }),
            620_000,
            `${peer.id} ftp`,
          );
          if (r.code !== 0) throw new Error(`curl failed:\n${formatResult(r)}`);
          const [bytes, seconds] = r.stdout.trim().split(/\s+/).map(Number);
          if (bytes !== size) throw new Error(`curl got ${bytes} bytes, the file has ${size}`);
          const digest = await sha256File(output);
          if (digest !== file.sha256) throw new Error(`the download's SHA-256 ${digest} is not the file's`);
          const mibs = size / MIB / seconds!;
          ctx.book.record(FTP_DOWNLOAD, peer.id, mibs);
          ctx.log(`ftp rep ${rep} ${peer.id}: ${mibs.toFixed(0)} MiB/s`);
        } catch (err) {
          ctx.book.fail(FTP_DOWNLOAD, peer.id, err);
          ctx.log(`ftp rep ${rep} ${peer.id}: FAILED ${err instanceof Error ? err.message : err}`);
        } finally {
          await rm(output, { force: true });
        }
      }
    }
  } finally {
    await server.close();
  }
}
