/** Small real TCP servers used as on-premise targets in tests; each closes with its sockets. */
import { createServer, type Server, type Socket } from "node:net";

export interface Target {
  readonly port: number;
  readonly server: Server;
  readonly sockets: Set<Socket>;
  close(): Promise<void>;
}

export function startTarget(
  onSocket: (s: Socket) => void,
  options: { port?: number; host?: string } = {},
): Promise<Target> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    onSocket(s);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      resolve({
        port,
        server,
        sockets,
        close: () =>
          new Promise((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      });
    });
  });
}

/** Greets like an FTP server, then echoes; answers a half-close with "bye" and its own end. */
export function bannerEcho(banner = "220 ready\r\n") {
  return (s: Socket): void => {
    s.write(banner);
    s.on("data", (d) => s.write(d));
    s.on("end", () => s.end("bye\r\n"));
  };
}

/** Read from a socket until it ends or `bytes` arrived. */
export function readAll(s: Socket, bytes = Number.POSITIVE_INFINITY, timeoutMs = 20_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`readAll: ${n} bytes after ${timeoutMs} ms`));
    }, timeoutMs);
    const onData = (d: Buffer): void => {
      chunks.push(d);
      n += d.length;
      if (n >= bytes) {
        cleanup();
        resolve(Buffer.concat(chunks));
      }
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      s.off("data", onData);
      s.off("end", onEnd);
      s.off("error", onError);
    };
    s.on("data", onData);
    s.on("end", onEnd);
    s.on("error", onError);
  });
}
