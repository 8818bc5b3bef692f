/** The subscription of the configured source: a relay's firehose, or Jetstream instances. */
import type { Logger } from '../lib/log.ts'
import { RelaySubscription } from './relay.ts'
import { JetstreamSubscription } from './jetstream.ts'

export type Source = RelaySubscription | JetstreamSubscription

export interface SourceOptions {
  relayUrl: string
  jetstream?: { urls: string[]; rewindMs: number; retentionMs: number } | undefined
  /**
   * Where a connection resumes: the last position read. Events read but not finished wait in
   * their queues across a reconnect; a restart resumes from the committed low-water mark.
   */
  getCursor: () => number | null
  /** Jetstream cannot resume the cursor (older than its retention). */
  onCursorTooOld: (reason: string) => void
  log: Logger
  idleTimeoutMs: number
  maxBackoffMs: number
}

export const openSource = (o: SourceOptions): Source => {
  const socket = { getCursor: o.getCursor, log: o.log, idleTimeoutMs: o.idleTimeoutMs, maxBackoffMs: o.maxBackoffMs }
  const jet = o.jetstream
  return jet
    ? new JetstreamSubscription({ ...socket, urls: jet.urls, rewindMs: jet.rewindMs, retentionMs: jet.retentionMs, onCursorTooOld: o.onCursorTooOld })
    : new RelaySubscription({ ...socket, url: o.relayUrl })
}
