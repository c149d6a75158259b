/**
 * What a configuration change made on another relay means for the live traffic of this one:
 * the same as the admin API does on the relay that made it (agents.ts, clients.ts,
 * mappings.ts), so that revoking or rotating a credential, or deleting or re-pointing a
 * mapping, cuts what it carried on every relay. Changes made through this relay's own store
 * were acted on by its admin API already and are skipped here; acting twice would close the
 * tunnel an agent reopened with its new token in the meantime.
 */
import type { Logger } from "../../shared/logger.js";
import type { ConfigChange, ConfigChangeBatch } from "../store/changes.js";
import { sameRoute } from "../store/store.js";

export type ChangeEffect =
  | { readonly do: "disconnect-agent"; readonly agentId: string; readonly reason: string }
  | { readonly do: "reset-client"; readonly clientId: string }
  | { readonly do: "reset-mapping"; readonly mappingId: string };

export interface EffectTargets {
  readonly tunnels: { disconnectAgent(agentId: string, reason: string): void };
  readonly connections: {
    killByClient(clientId: string): number;
    killByMapping(mappingId: string): number;
  };
  readonly logger: Logger;
}

/** What `change` asks of the relay's live traffic; null when nothing live depends on it. */
export function effectOf(change: ConfigChange): ChangeEffect | null {
  if (change.kind === "created") return null;
  switch (change.entity) {
    case "agent": {
      const moved = change.kind === "changed" && change.before?.location !== change.after?.location;
      if (change.kind === "changed" && !moved) return null;
      const reason = {
        deleted: "agent deleted",
        rotated: "token rotated",
        changed: "agent moved to another location",
      }[change.kind];
      return { do: "disconnect-agent", agentId: change.id, reason };
    }
    case "client": {
      const b = change.before;
      const a = change.after;
      const same = change.kind === "changed" && b?.location === a?.location && b?.username === a?.username;
      return same ? null : { do: "reset-client", clientId: change.id };
    }
    case "mapping": {
      const b = change.before;
      const a = change.after;
      const same = change.kind === "changed" && b !== null && a !== null && sameRoute(b, a);
      return same ? null : { do: "reset-mapping", mappingId: change.id };
    }
    default: {
      const never: never = change;
      return never;
    }
  }
}

/** The listener for `Store.onChange` that applies what other relays changed to this relay. */
export function applyRemoteChanges(t: EffectTargets): (batch: ConfigChangeBatch) => void {
  const log = t.logger.child({ component: "change-effects" });
  return (batch) => {
    for (const change of batch.changes) {
      if (change.local) continue;
      const effect = effectOf(change);
      if (effect === null) continue;
      try {
        switch (effect.do) {
          case "disconnect-agent":
            t.tunnels.disconnectAgent(effect.agentId, effect.reason);
            break;
          case "reset-client":
            t.connections.killByClient(effect.clientId);
            break;
          case "reset-mapping":
            t.connections.killByMapping(effect.mappingId);
            break;
          default: {
            const never: never = effect;
            return never;
          }
        }
        log.info({ ...effect, version: batch.version }, "applied a change made on another relay");
      } catch (err) {
        log.error({ err, ...effect }, "could not apply a change made on another relay");
      }
    }
  };
}
