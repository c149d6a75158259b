import type { Socket } from "node:net";

/**
 * End a TCP connection as a failure: RST, so the peer cannot take it for a clean end of file.
 * Once our side has sent its FIN (`end()` was called) there is nothing left to protect in that
 * direction, and libuv refuses a reset after a shutdown (UV_EINVAL) while Node then never
 * closes the handle (it lingers and spins the loop at exit): destroy plainly instead.
 */
export function abortSocket(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.writableEnded || socket.connecting) socket.destroy();
  else socket.resetAndDestroy();
}
