import type { Lexicons } from '@atproto/lexicon'
import type { Pool } from '../db/pool.ts'
import type { ServiceAuth } from './auth.ts'
import type { AdminAccess, ModeratorAuth } from './admin-auth.ts'
import type { HandleNames } from './dashboard/handles.ts'
import type { RecordProof } from '../atproto/record-proof.ts'

export interface FanoutStatus {
  /** Whether the LISTEN connection is up (otherwise the feed is polled only). */
  listening: boolean
  position: number
  listeners: number
  changesRead: number
  framesSent: number
  lastError: string | null
}

export interface SubscriptionStats {
  connections: number
  slowConsumersCut: number
  expired: number
  refused: number
}

/** What this process pushes: subscriptions (through the fanout) and webhooks. */
export interface PushSources {
  fanout(): FanoutStatus
  subscriptions(): SubscriptionStats | undefined
  webhookUrls: string[]
}

/** What the sync methods need: a record's proof from its repo's host. */
export interface RecordProver {
  prove(did: string, collection: string, rkey: string): Promise<RecordProof | 'no-proof'>
}

export interface ApiContext {
  pool: Pool
  lexicons: Lexicons
  auth: ServiceAuth
  relayUrl: string
  /** Where events come from: a relay's firehose, or Jetstream instances (proofs from each host). */
  source: { mode: 'firehose' | 'jetstream'; urls: string[] }
  version: string
  /** Whether this replica ingests (the others only serve). */
  isLeader: () => boolean
  moderators: ModeratorAuth
  admin: AdminAccess
  push?: PushSources | undefined
  /** Handles shown beside DIDs on the dashboard. */
  handles?: HandleNames | undefined
  /** Records proven from their hosts for pub.chive.sync.*; without it those methods are not served. */
  records?: RecordProver | undefined
}
