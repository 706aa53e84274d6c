// Reconnection delays: exponential, capped, with jitter so that the clients
// of a node that just died do not all come back in the same millisecond.

/** The defaults of LiveConnection's `backoff` option. */
export const DEFAULT_BACKOFF = Object.freeze({ initialMs: 500, maxMs: 30_000, factor: 2, jitter: 0.5 });

/**
 * The delay before reconnection attempt `attempt` (0 for the first):
 * `min(maxMs, initialMs * factor^attempt)`, of which the fraction `jitter`
 * is random (0: none; 0.5: between half and all of it; 1: "full jitter").
 */
export function backoffDelay(attempt, options = {}, random = Math.random) {
  const { initialMs, maxMs, factor, jitter } = { ...DEFAULT_BACKOFF, ...options };
  const ceiling = Math.min(maxMs, initialMs * Math.pow(factor, Math.max(0, attempt)));
  const share = Math.min(1, Math.max(0, jitter));
  return Math.round(ceiling * (1 - share * random()));
}
