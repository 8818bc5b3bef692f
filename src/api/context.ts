import type { Lexicons } from '@atproto/lexicon'
import type { Pool } from '../db/pool.ts'
import type { ServiceAuth } from './auth.ts'
import type { AdminAccess, ModeratorAuth } from './admin-auth.ts'
import type { HandleNames } from './dashboard/handles.ts'

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
}
