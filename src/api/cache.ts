/**
 * Shares one async read among callers for `ms` after it completes, and while it runs. For
 * endpoints that are unauthenticated and unlimited (`_health`, `/metrics`): however often they
 * are asked, the database sees at most one read per interval per process. A failed read is not
 * kept, so an answer about a database that is back is not held back.
 */
export const cachedFor = <T>(ms: number, read: () => Promise<T>, now: () => number = Date.now): (() => Promise<T>) => {
  let value: Promise<T> | null = null
  let settledAt: number | null = null
  return () => {
    if (value && (settledAt === null || now() - settledAt < ms)) return value
    settledAt = null
    const p = read()
    value = p
    p.then(
      () => {
        if (value === p) settledAt = now()
      },
      () => {
        if (value === p) value = null
      },
    )
    return p
  }
}
