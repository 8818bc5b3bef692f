/** Counts one more `key` (counters reported by health and metrics). */
export const bump = (counts: Record<string, number>, key: string): void => {
  counts[key] = (counts[key] ?? 0) + 1
}
