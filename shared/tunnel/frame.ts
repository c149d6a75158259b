/** Tunnel frames as values: a tagged union on `type`, one member per frame type. */
import type { GoAwayCode, OpenCode, OpenKind, ResetCode } from "./constants.js";

export interface HelloFrame {
  readonly type: "hello";
  /** Parsed JSON; validated with zod by the session, not by the codec. */
  readonly body: unknown;
}
export interface WelcomeFrame {
  readonly type: "welcome";
  readonly body: unknown;
}
export interface OpenFrame {
  readonly type: "open";
  readonly streamId: number;
  readonly kind: OpenKind;
  readonly host: string;
  readonly port: number;
  /** How long the agent may take to dial (CONNECT) or to wait for the peer (BIND), in ms. */
  readonly timeoutMs: number;
}
export interface OpenResultFrame {
  readonly type: "open-result";
  readonly streamId: number;
  readonly code: OpenCode;
  /** CONNECT: the agent's local address; BIND: the listening address. Empty on failure. */
  readonly address: string;
  readonly port: number;
}
export interface DataFrame {
  readonly type: "data";
  readonly streamId: number;
  /** May be a piece of a frame whose payload spans WebSocket messages. */
  readonly data: Buffer;
}
export interface WindowUpdateFrame {
  readonly type: "window-update";
  readonly streamId: number;
  readonly delta: number;
}
export interface FinFrame {
  readonly type: "fin";
  readonly streamId: number;
}
export interface ResetFrame {
  readonly type: "reset";
  readonly streamId: number;
  readonly code: ResetCode;
  readonly reason: string;
}
export interface PingFrame {
  readonly type: "ping";
  readonly nonce: number;
}
export interface PongFrame {
  readonly type: "pong";
  readonly nonce: number;
}
export interface GoAwayFrame {
  readonly type: "goaway";
  readonly code: GoAwayCode;
  readonly reason: string;
}
export interface BindPeerFrame {
  readonly type: "bind-peer";
  readonly streamId: number;
  readonly address: string;
  readonly port: number;
}

/** One relay agents may tunnel to. */
export interface RelayEntry {
  readonly id: string;
  /** ws:// or wss:// URL of its tunnel endpoint. */
  readonly url: string;
}
export interface RelaysFrame {
  readonly type: "relays";
  readonly relays: readonly RelayEntry[];
}

export type Frame =
  | HelloFrame
  | WelcomeFrame
  | OpenFrame
  | OpenResultFrame
  | DataFrame
  | WindowUpdateFrame
  | FinFrame
  | ResetFrame
  | PingFrame
  | PongFrame
  | GoAwayFrame
  | BindPeerFrame
  | RelaysFrame;
