/**
 * The connection a SOCKS BIND belongs to (resolve.ts): on this relay, a live CONNECT of the
 * client (connections.ts `controlFor`); in a cluster, also one that another relay carries, for
 * a balancer with no affinity may send an FTP client's control connection to one relay and its
 * BIND to another. `RemoteBindControls` is where the others' are found.
 */
import type { ConnectionInfo } from "./connections.js";

/** What a BIND needs of the connection it belongs to. */
export type BindControl = Pick<
  ConnectionInfo,
  | "id"
  | "location"
  | "mappingId"
  | "virtualHost"
  | "virtualPort"
  | "internalHost"
  | "internalPort"
  | "agentId"
>;

export interface RemoteBindControls {
  /**
   * The live CONNECT of this client on another relay a BIND here belongs to: its newest to
   * `host` when there is one, else its newest. A client is its id, or its address when
   * authentication is off. `patient`: when there is none, look again briefly, for one
   * written a moment too late.
   */
  find(
    clientId: string | null,
    remoteAddress: string,
    host: string,
    patient: boolean,
  ): Promise<BindControl | undefined>;
  /** Call `gone` once when that connection ends; returns what cancels. */
  whenGone(control: BindControl, gone: () => void): () => void;
}

/** One relay: every control connection is its own. */
export const NO_OTHER_RELAYS: RemoteBindControls = {
  find: () => Promise.resolve(undefined),
  whenGone: () => () => {},
};
