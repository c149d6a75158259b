/**
 * Who the SOCKS client is: method selection (RFC 1928 §3) and username/password (RFC 1929)
 * against the stored password hashes. A client's location decides which mappings it reaches.
 */
import { AuthError } from "../../shared/errors.js";
import { secretMatches } from "../admin/secrets.js";
import type { Store } from "../store/store.js";
import type { CheckCredentials } from "./check-credentials.js";
import type { Credentials } from "./codec.js";
import { SOCKS5_AUTH } from "./constants.js";

/** The name the relay's own checks go by in the live connections and the logs. */
export const CHECK_CLIENT_NAME = "underpass check";

/** Who is asking, once authenticated. */
export interface Principal {
  /** Null for a client without credentials (authentication off). */
  readonly clientId: string | null;
  readonly clientName: string | null;
  readonly location: string;
}

export interface AuthPolicy {
  /** RFC 1929 username/password is required (the default). */
  readonly requireAuth: boolean;
  /** Location of clients without credentials, when authentication is off. */
  readonly anonymousLocation: string;
  /** Credentials the relay issued to itself for a check through this endpoint. */
  readonly checkCredentials?: CheckCredentials | undefined;
}

export type MethodChoice =
  | typeof SOCKS5_AUTH.NO_AUTH
  | typeof SOCKS5_AUTH.USERNAME_PASSWORD
  | typeof SOCKS5_AUTH.NO_ACCEPTABLE;

/** The method the relay answers a greeting with: no authentication only where it is off. */
export function chooseMethod(offered: readonly number[], policy: AuthPolicy): MethodChoice {
  if (!policy.requireAuth && offered.includes(SOCKS5_AUTH.NO_AUTH)) return SOCKS5_AUTH.NO_AUTH;
  if (offered.includes(SOCKS5_AUTH.USERNAME_PASSWORD)) return SOCKS5_AUTH.USERNAME_PASSWORD;
  return SOCKS5_AUTH.NO_ACCEPTABLE;
}

/** A client without credentials. */
export function anonymous(policy: AuthPolicy): Principal {
  return { clientId: null, clientName: null, location: policy.anonymousLocation };
}

/**
 * The client the credentials belong to. With authentication off, credentials that match are
 * honoured (RFC 1929 allows offering them) and any others make an anonymous client.
 */
export async function authenticate(
  store: Store,
  policy: AuthPolicy,
  { username, password }: Credentials,
): Promise<Principal | AuthError> {
  const check = policy.checkCredentials?.verify(username, password);
  if (check) return { clientId: null, clientName: CHECK_CLIENT_NAME, location: check.location };
  const c = await store.findClientByUsername(username);
  if (c && secretMatches(password, c.passwordHash)) {
    return { clientId: c.id, clientName: c.name, location: c.location };
  }
  return policy.requireAuth ? new AuthError(`no client ${username} with that password`) : anonymous(policy);
}
