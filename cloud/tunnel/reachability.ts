/** The answer of a reachability check: the agent really dials the internal target. */
export interface CheckResult {
  readonly reachable: boolean;
  readonly latencyMs?: number;
  readonly error?: string;
}
