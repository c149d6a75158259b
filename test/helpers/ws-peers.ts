/**
 * Stock `ws` peers for tests of the tunnel's transport: a WebSocket server on 127.0.0.1 port 0
 * that hands each connection over with the socket under it, and a client that opens one and
 * says which socket it came on (what the agent hands its transport).
 */
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { WebSocket, WebSocketServer, type WebSocketServer as WsServer } from "ws";

export interface WsTestServer {
  /** ws://127.0.0.1:<port>/tunnel */
  readonly url: string;
  readonly wss: WsServer;
  /** Ends every connection and the server. */
  close(): Promise<void>;
}

/** A server that hands every upgraded connection to `onConnection`, with its socket. */
export async function startWsServer(
  onConnection: (ws: WebSocket, socket: Duplex, req: IncomingMessage) => void,
): Promise<WsTestServer> {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  const server: Server = createServer();
  const sockets = new Set<Duplex>();
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, socket, req));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/tunnel`,
    wss,
    async close() {
      for (const s of sockets) s.destroy();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A stock `ws` client, open, with the socket under it. */
export async function connectWs(url: string, ca?: Buffer): Promise<{ ws: WebSocket; socket: Socket }> {
  const ws = new WebSocket(url, { perMessageDeflate: false, ...(ca ? { ca } : {}) });
  let socket: Socket | null = null;
  ws.on("upgrade", (res: IncomingMessage) => {
    socket = res.socket as Socket;
  });
  await once(ws, "open");
  return { ws, socket: socket! };
}
