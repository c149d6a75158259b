/** Whose tunnel it is: the agent holding the hello's token, found by the token's hash. */
import type { Hello } from "../../shared/tunnel/handshake.js";
import { hashSecret } from "../admin/secrets.js";
import type { AgentRecord, Store } from "../store/store.js";
import { type TunnelCheck, unknownToken } from "./hello-check.js";

export async function authenticateAgent(store: Store, hello: Hello): Promise<TunnelCheck<AgentRecord>> {
  const agent = await store.findAgentByTokenHash(hashSecret(hello.token));
  return agent ? { ok: true, value: agent } : { ok: false, refusal: unknownToken() };
}
