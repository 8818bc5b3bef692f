/**
 * Revs are TIDs: base32-sortable microsecond timestamps. A rev far ahead of now is a position no
 * honest host can have written yet; accepted, it would hold every real commit after it as stale
 * until the clock catches up. Every rev from every source (firehose commits, Jetstream claims,
 * record proofs, repo snapshots) is held to this one bound.
 */
const TID_CHARS = '234567abcdefghijklmnopqrstuvwxyz'

/** How far ahead of this machine's clock a rev may be (clock skew between hosts). */
export const MAX_FUTURE_MS = 5 * 60 * 1000

/** The microsecond timestamp of a TID rev; NaN when it is not one. */
export const revMicros = (rev: string): number => {
  if (rev.length !== 13) return Number.NaN
  let v = 0n
  for (const c of rev) {
    const d = TID_CHARS.indexOf(c)
    if (d === -1) return Number.NaN
    v = (v << 5n) | BigInt(d)
  }
  return Number(v >> 10n)
}

/** Whether a rev lies more than MAX_FUTURE_MS ahead of `now` (ms). */
export const revInFuture = (rev: string, now = Date.now()): boolean => revMicros(rev) / 1000 > now + MAX_FUTURE_MS
