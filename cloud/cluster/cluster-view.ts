/**
 * The cluster's merged view: live connections and agent tunnels stay in the relay that carries
 * them, so a relay asked for the cluster's asks every other registered relay (live or not: one
 * that lost the database may still carry connections), in parallel, over HTTP
 * to the admin URL it registered (`GET /v1/cluster/state`, `DELETE /v1/cluster/connections/:id`),
 * authenticated by the cluster secret that the relays keep in their database. Each peer gets
 * `timeoutMs` (1.5 s): a dead or partitioned peer costs that at most, and the answer names the
 * live relays that did not answer instead of failing (a relay whose heartbeat stopped and that
 * does not answer either is gone). What a peer answers is its state at that
 * moment, so the view is as fresh as the request.
 */
import { request as httpRequest, type RequestOptions } from "node:http";
import { request as httpsRequest } from "node:https";
import type { Logger } from "../../shared/logger.js";
import {
  type ConnectionAnswer,
  connectionAnswer,
  type RelayStateAnswer,
  relayStateAnswer,
} from "../admin/schemas.js";
import type { Membership, RelayInfo } from "./membership.js";

/** Wait for one peer's answer, ms: within the ~2 s a dead peer may cost. */
export const PEER_TIMEOUT_MS = 1_500;
/** Largest answer read from a peer, bytes (a relay with 100 000 connections answers ~40 MB). */
const MAX_PEER_ANSWER_BYTES = 64 * 1024 * 1024;

export interface ClusterViewOptions {
  readonly selfId: string;
  /** The membership, once the relay has joined; null before. */
  readonly membership: () => Membership | null;
  /** Extra CA certificates for peers' HTTPS admin URLs (PEM). */
  readonly ca?: Buffer | undefined;
  readonly timeoutMs?: number;
  readonly logger: Logger;
}

/** A merged answer: what every relay that answered holds, and which relays did not answer. */
export interface Merged<T> {
  readonly value: T;
  readonly missing: readonly string[];
}

interface Peer {
  readonly id: string;
  readonly adminUrl: string | null;
  readonly live: boolean;
}

/** What the admin API needs of the cluster (cloud/admin/deps.ts). */
export interface ClusterDirectory {
  readonly selfId: string;
  /** Every registered relay, live or not. */
  relays(): readonly RelayInfo[];
  /** The secret peers authenticate with; null when there is no cluster (the file store). */
  secret(): string | null;
  /** The states of the other live relays, and which did not answer. */
  peerStates(): Promise<Merged<RelayStateAnswer[]>>;
  /** Kills connection `id` on whichever other relay holds it: what it was (with its relay), or null. */
  killOnPeers(id: string): Promise<Merged<ConnectionAnswer | null>>;
}

export class ClusterView implements ClusterDirectory {
  readonly #o: ClusterViewOptions;
  readonly selfId: string;

  constructor(o: ClusterViewOptions) {
    this.#o = o;
    this.selfId = o.selfId;
  }

  relays(): readonly RelayInfo[] {
    return this.#o.membership()?.relays() ?? [];
  }

  secret(): string | null {
    return this.#o.membership()?.secret() ?? null;
  }

  /**
   * The other registered relays: the live ones, and those whose heartbeat stopped, which may
   * only have lost the database while they still carry connections (a partition).
   */
  #peers(): Peer[] {
    return this.relays().filter((r) => r.id !== this.selfId);
  }

  async peerStates(): Promise<Merged<RelayStateAnswer[]>> {
    const peers = this.#peers();
    const answers = await Promise.all(
      peers.map(async (p) => {
        const got = await this.#ask(p, "GET", "/v1/cluster/state");
        if (got === null || got.status !== 200) return null;
        const parsed = relayStateAnswer.safeParse(got.body);
        if (!parsed.success || parsed.data.relayId !== p.id) {
          this.#o.logger.warn({ peer: p.id }, "a relay's state answer did not fit its schema");
          return null;
        }
        return parsed.data;
      }),
    );
    const value: RelayStateAnswer[] = [];
    const missing: string[] = [];
    answers.forEach((a, i) => {
      const peer = peers[i]!;
      // a relay whose heartbeat stopped and that does not answer is gone: not news
      if (a === null) {
        if (peer.live) missing.push(peer.id);
      } else value.push(a);
    });
    return { value, missing };
  }

  async killOnPeers(id: string): Promise<Merged<ConnectionAnswer | null>> {
    const peers = this.#peers();
    const path = `/v1/cluster/connections/${encodeURIComponent(id)}`;
    const answers = await Promise.all(peers.map((p) => this.#ask(p, "DELETE", path)));
    const missing: string[] = [];
    let killed: ConnectionAnswer | null = null;
    answers.forEach((a, i) => {
      const parsed = a?.status === 200 ? connectionAnswer.safeParse(a.body) : null;
      // an answer from another relay than the one asked (an admin URL that names loopback,
      // reached from another host) is no answer
      if (parsed?.success && parsed.data.relayId === peers[i]!.id) killed = parsed.data;
      else if (a === null ? peers[i]!.live : a.status !== 404) missing.push(peers[i]!.id);
    });
    return { value: killed, missing };
  }

  /** One request to a peer; null when it cannot be asked or did not answer in time. */
  #ask(peer: Peer, method: string, path: string): Promise<{ status: number; body: unknown } | null> {
    const secret = this.secret();
    if (peer.adminUrl === null || secret === null) return Promise.resolve(null);
    const timeoutMs = this.#o.timeoutMs ?? PEER_TIMEOUT_MS;
    const url = new URL(path, `${peer.adminUrl}/`);
    const send = url.protocol === "https:" ? httpsRequest : httpRequest;
    const options: RequestOptions & { ca?: Buffer } = {
      method,
      headers: { authorization: `Bearer ${secret}`, accept: "application/json" },
      signal: AbortSignal.timeout(timeoutMs),
      ...(url.protocol === "https:" && this.#o.ca ? { ca: this.#o.ca } : {}),
    };
    return new Promise((resolve) => {
      const fail = (why: string): void => {
        if (peer.live) {
          this.#o.logger.warn(
            { peer: peer.id, adminUrl: peer.adminUrl, why },
            "a relay of the cluster did not answer",
          );
        }
        resolve(null);
      };
      const req = send(url, options, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > MAX_PEER_ANSWER_BYTES) req.destroy(new Error("answer too large"));
          else chunks.push(c);
        });
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          try {
            resolve({ status: res.statusCode ?? 0, body: text === "" ? null : JSON.parse(text) });
          } catch {
            fail(`status ${res.statusCode}, not JSON`);
          }
        });
        res.on("error", (err) => fail(err.message));
      });
      req.on("error", (err) => fail(err.message));
      req.end();
    });
  }
}
