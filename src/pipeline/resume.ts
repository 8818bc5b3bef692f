/**
 * Where the stream resumes at start, and whether what came before it may have been missed. The
 * committed cursor is the low-water mark (low-water-mark.ts); without one (a first start, a relay
 * change, a cursor row removed, a Jetstream cursor from the future that an earlier version
 * committed) the stretch before is a gap, covered by a full backfill.
 */
import type { Logger } from '../lib/log.ts'
import type { Pool } from '../db/pool.ts'
import { knownRelays, readCursor } from '../db/stream-cursor.ts'
import { holdsRecords, requestFullBackfill } from '../db/backfill.ts'
import { MAX_FUTURE_MS } from '../atproto/rev.ts'

export interface ResumeOptions {
  pool: Pool
  /** The key the cursor is stored under (the relay's URL, or `jetstream`). */
  relayUrl: string
  jetstream: boolean
  /** Seq to start from when no cursor is stored; undefined: live tail. */
  startCursor: number | undefined
  backfillOnGap: boolean
  log: Logger
  /** A stream condition for the operator (here: a stored cursor from the future). */
  problem: (name: string, message: string) => void
  onBackfillRequested?: (() => void) | undefined
}

export interface ResumePoint {
  /** The committed cursor, when one can be resumed. */
  stored: number | null
  /** Where reading starts: the stored cursor, the configured start, or (Jetstream) now. */
  from: number | null
}

export const resumePoint = async (o: ResumeOptions): Promise<ResumePoint> => {
  let stored = await readCursor(o.pool, o.relayUrl)
  let forgotten: string | null = null
  if (o.jetstream && stored !== null && stored > (Date.now() + MAX_FUTURE_MS) * 1000) {
    // Written by a version that trusted a time_us from the future: resuming it would skip
    // everything until then. Forgotten, and covered as a gap.
    forgotten = `gap: the stored Jetstream cursor ${stored} lies in the future`
    o.problem('FutureCursor', forgotten)
    stored = null
  }
  if (stored === null && o.backfillOnGap) {
    const known = forgotten === null ? await knownRelays(o.pool) : []
    // No cursor but records held (a live tail stopped before its first event, a cursor row
    // removed): what happened since they were indexed is unknown, so it is a gap like any other.
    const reason =
      forgotten ??
      (known.length > 0
        ? `relay changed from ${known.join(', ')}`
        : (await holdsRecords(o.pool))
          ? 'gap: no cursor stored but the index holds records'
          : 'first start: nothing indexed yet')
    if ((await requestFullBackfill(o.pool, reason)) !== null) {
      o.log.info({ reason }, 'full backfill requested')
      o.onBackfillRequested?.()
    }
  }
  // A Jetstream live tail starts at this moment, not at whichever connection opens first: a
  // reconnect before the first event (v2 refused, an instance restarting) resumes from here, and
  // so does a restart (the checkpoint commits it). A relay's seq has no such time to pin.
  return { stored, from: stored ?? o.startCursor ?? (o.jetstream ? Date.now() * 1000 : null) }
}
