import type { Pool, PoolClient } from './pool.ts'
import { inTransaction } from './transaction.ts'

/** A write refused because this process no longer leads ingest (see src/db/leader.ts). */
export class FencedError extends Error {
  override name = 'FencedError'
}

interface Fence {
  /** The epoch this process leads in; null when it does not. */
  epoch: () => number | null
  /** The epoch moved on under us: another replica leads. */
  onDeposed: (err: FencedError) => void
}

const fences = new WeakMap<Pool, Fence>()

/**
 * Fences every leader write made through `pool` (the ingest pool of a replica that may lead):
 * each commits only while the stored leader epoch is this process's. Pools without a fence (the
 * CLI's backfill, which shares the work with whoever leads) are not fenced.
 */
export const fenceWrites = (pool: Pool, fence: Fence): void => {
  fences.set(pool, fence)
}

/**
 * A transaction of the ingest leader's: it commits only under this replica's leader epoch, and
 * one refused because another replica leads makes this one drop leadership. Every write that
 * only the leader may make goes through here. Keep network calls out of `work`: the epoch row
 * stays share-locked until the commit, and a new leader waits for it.
 */
export const fencedTransaction = async <T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> => {
  const fence = fences.get(pool)
  if (!fence) return inTransaction(pool, work)
  const mine = fence.epoch()
  if (mine === null) throw new FencedError('this replica does not lead ingest: the write is refused')
  return inTransaction(pool, async (client) => {
    // FOR SHARE until the commit: a new leader's increment waits for this transaction, and every
    // one that starts after it sees the new epoch.
    const res = await client.query<{ epoch: number }>('SELECT epoch FROM leader_epoch FOR SHARE')
    const stored = Number(res.rows[0]?.epoch)
    if (stored !== mine) {
      const err = new FencedError(`deposed: leader epoch ${stored} is not ours (${mine}); the write is refused`)
      fence.onDeposed(err)
      throw err
    }
    return work(client)
  })
}

/** One statement, fenced as `fencedTransaction` is. */
export const fencedQuery = <R extends object = Record<string, unknown>>(pool: Pool, text: string, values?: unknown[]) =>
  fencedTransaction(pool, (client) => client.query<R>(text, values))
