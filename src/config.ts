import { readFileSync } from 'node:fs'
import { boolEnv, env, intEnv, moderatorDidsEnv, numberEnv, schemaEnv, trustProxyEnv, webhookUrlsEnv, type TrustProxy } from './config/env.ts'
import { httpBase, looksLikeJetstream, normaliseJetstreamUrl, normaliseRelayUrl } from './config/urls.ts'

export { parseTrustProxy, type TrustProxy } from './config/env.ts'
export { httpBase, isPrivateHost, looksLikeJetstream, normaliseJetstreamUrl, normaliseRelayUrl } from './config/urls.ts'

export interface Config {
  /** Postgres URL; undefined means: run an embedded Postgres under `dataDir`. */
  databaseUrl: string | undefined
  /** Postgres schema holding the service's tables. */
  databaseSchema: string
  dataDir: string
  embeddedPgPort: number
  /** Base URL of the relay (or PDS) whose subscribeRepos is consumed, normalised to ws(s)://. */
  relayUrl: string
  /** Seq to start from when no cursor is stored for this relay; undefined: live tail. */
  startCursor: number | undefined
  /**
   * Jetstream as the source instead of the relay's firehose (`JETSTREAM_URL`, or a `RELAY_URL`
   * that names a Jetstream): every commit event is proven from its repo's host.
   */
  jetstream: { urls: string[]; rewindMs: number; retentionMs: number; reconcileMs: number } | undefined
  plcUrl: string
  port: number
  host: string
  serviceDid: string
  logLevel: string
  /** Allow DID documents and PDSes on loopback / private addresses (tests, local networks); never implied. */
  allowPrivateNetwork: boolean
  /** How often a replica that does not ingest tries to take over. */
  leaderRetryMs: number
  /** How often the leader proves its lock connection alive (and how long a check may take). */
  leaderCheckMs: number
  /** A relay connection that sends nothing for this long is presumed stalled and reopened. */
  relayIdleTimeoutMs: number
  /** Cap of the reconnect backoff. */
  relayMaxBackoffMs: number
  /** Per-repo processing of the stream (see src/pipeline/repo-queue.ts). */
  ingest: {
    concurrency: number
    maxParkMs: number
    maxQueuedBytes: number
  }
  /** Timeout of one DID document fetch. */
  identityTimeoutMs: number
  /** Subject proofs fetched from inviters' PDSes. */
  verify: {
    concurrency: number
    perHost: number
    maxAttempts: number
    backoffBaseMs: number
    /** Cap of the retry backoff (a host's Retry-After is held to it too). */
    backoffMaxMs: number
    /** How long a claimed job is reserved before another worker may take it. */
    leaseMs: number
    /** How often the queue is looked at when nothing woke the worker. */
    pollMs: number
    timeoutMs: number
    maxBytes: number
  }
  backfill: {
    /** http(s) base URL for repo discovery (listReposByCollection). */
    url: string
    onGap: boolean
    concurrency: number
    perHost: number
    ratePerHost: number
    /** Attempts in a run; a repo past them leaves the run and is retried as a resync. */
    maxAttempts: number
    backoffBaseMs: number
    /** Cap of the wait between a repo's attempts (they go on until one succeeds or a verdict ends it). */
    backoffMaxMs: number
    /** A repo sync may take long: its claim lasts longer than a proof's. */
    leaseMs: number
    pollMs: number
    /** First wait after a failed discovery page; doubles per failure in a row, with jitter. */
    discoveryBackoffMs: number
    discoveryMaxBackoffMs: number
    /** Whole repos: a longer timeout and a larger cap than single-record proofs. */
    timeoutMs: number
    maxBytes: number
  }
  /** Moderator access and spam thresholds. */
  admin: {
    /** HTTP Basic / dashboard password; undefined: no password is accepted. */
    password: string | undefined
    /** DIDs whose service-auth tokens are accepted on the admin API. */
    moderatorDids: string[]
    /** Failed sign-ins from one address within the window before it is refused for the window. */
    maxAuthFailures: number
    authFailureWindowMs: number
    /** An inviter at or above either count is flagged as likely spam. */
    spamPerHour: number
    spamPerDay: number
  }
  /** The periodic upkeep: expiry records and purges. */
  retention: {
    days: number
    intervalMs: number
    /** How often expired invites are recorded (and so pushed), apart from the rest of the upkeep. */
    expiryIntervalMs: number
  }
  /** Limits of the public API. */
  api: {
    /** Requests per client address per window; 0 turns the limit off. */
    rateLimitMax: number
    rateLimitWindowMs: number
    requestTimeoutMs: number
    maxHeaderBytes: number
    /** API queries running longer are cancelled by Postgres. */
    statementTimeoutMs: number
    /** Connections of the API's own pool (ingest has its own, so API load cannot take them). */
    poolMax: number
    /**
     * Which `X-Forwarded-For` hops to believe for the client address: false (none), a number of
     * hops (the proxies in front of us), or the proxies' addresses / CIDR ranges.
     */
    trustProxy: TrustProxy
  }
  /** Subscriptions (pub.chive.collabIndexer.subscribeInvites). */
  push: {
    /** The change feed is read at least this often (LISTEN/NOTIFY wakes it at once otherwise). */
    pollMs: number
    maxBufferedBytes: number
    slowTimeoutMs: number
    heartbeatMs: number
    maxConnections: number
    /** Concurrent subscriptions of one caller (DID), and of one client address. */
    maxPerDid: number
    maxPerAddress: number
    /**
     * A token (or a #refresh) whose `exp` is further ahead is refused: anyone can sign a token
     * for a DID of their own with any `exp`, and a stream lasts until it.
     */
    maxTokenTtlSeconds: number
    /** Connections of the replays' own pool, so that `cursor=0` replays cannot starve the queries. */
    replayPoolMax: number
  }
  /** Every change POSTed to each URL, HMAC-signed with the secret. */
  webhooks: {
    urls: string[]
    secret: string | undefined
    timeoutMs: number
    backoffBaseMs: number
    maxBackoffMs: number
  }
  version: string
}

/** Where the stored cursor of this configuration's stream lives: one key for every Jetstream instance. */
export const streamKey = (config: Pick<Config, 'relayUrl' | 'jetstream'>): string => (config.jetstream ? 'jetstream' : config.relayUrl)

const packageVersion = (): string => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string
  }
  return pkg.version
}

/** Hours, fractions too (0.05: every 3 minutes); 0 turns reconciliation off. */
const reconcileHoursEnv = (): number => {
  const hours = numberEnv('JETSTREAM_RECONCILE_HOURS', 24, 0, 24 * 365)
  // Below that, every tracked repo's host would be asked for its records many times a minute.
  if (hours > 0 && hours < 0.01) throw new Error(`JETSTREAM_RECONCILE_HOURS must be 0 (never) or at least 0.01 (36 s), got "${env('JETSTREAM_RECONCILE_HOURS')}"`)
  return Math.round(hours * 3_600_000)
}

const jetstreamEnv = (relayRaw: string | undefined): Config['jetstream'] => {
  const listed = env('JETSTREAM_URL')
  const raw = listed ?? (relayRaw !== undefined && looksLikeJetstream(relayRaw) ? relayRaw : undefined)
  if (raw === undefined) return undefined
  const urls = raw
    .split(/[\s,]+/)
    .filter((u) => u !== '')
    .map((u) => {
      try {
        return normaliseJetstreamUrl(u)
      } catch {
        throw new Error(`${listed ? 'JETSTREAM_URL' : 'RELAY_URL'} must list ws://, wss://, http:// or https:// URLs, got "${u}"`)
      }
    })
  return {
    urls: [...new Set(urls)],
    rewindMs: intEnv('JETSTREAM_REWIND_MS', 5000, 0, 3_600_000),
    retentionMs: intEnv('JETSTREAM_RETENTION_HOURS', 24, 1, 24 * 365) * 3_600_000,
    reconcileMs: reconcileHoursEnv(),
  }
}

export const loadConfig = (): Config => {
  const jetstream = jetstreamEnv(env('RELAY_URL'))
  // A Jetstream named as RELAY_URL is the source; discovery and repo syncs still need a relay.
  const relayRaw = env('RELAY_URL') !== undefined && !(jetstream && looksLikeJetstream(env('RELAY_URL') as string)) ? env('RELAY_URL') : undefined
  const relayUrl = normaliseRelayUrl(relayRaw ?? 'wss://bsky.network')
  const plcUrl = (env('PLC_URL') ?? 'https://plc.directory').replace(/\/+$/, '')
  try {
    new URL(plcUrl)
  } catch {
    throw new Error(`PLC_URL is not a URL: "${plcUrl}"`)
  }
  const startRaw = env('START_CURSOR')
  let startCursor: number | undefined
  if (startRaw !== undefined) {
    startCursor = Number(startRaw)
    if (!Number.isSafeInteger(startCursor) || startCursor < 0) {
      throw new Error(`START_CURSOR must be a non-negative integer, got "${startRaw}"`)
    }
  }
  return {
    databaseUrl: env('DATABASE_URL'),
    databaseSchema: schemaEnv(),
    dataDir: env('DATA_DIR') ?? './data',
    embeddedPgPort: intEnv('EMBEDDED_PG_PORT', 54329, 1, 65535),
    relayUrl,
    startCursor,
    jetstream,
    plcUrl,
    port: intEnv('PORT', 3000, 0, 65535),
    host: env('HOST') ?? '0.0.0.0',
    serviceDid: env('SERVICE_DID') ?? 'did:web:localhost',
    logLevel: env('LOG_LEVEL') ?? 'info',
    // Only when the operator says so: DID documents are written by anyone, and a private relay
    // (reached whatever this says) must not open identity and PDS fetches to the private network.
    allowPrivateNetwork: boolEnv('ALLOW_PRIVATE_NETWORK', false),
    leaderRetryMs: intEnv('LEADER_RETRY_MS', 2000, 50, 600_000),
    leaderCheckMs: intEnv('LEADER_CHECK_MS', 2000, 50, 600_000),
    relayIdleTimeoutMs: intEnv('RELAY_IDLE_TIMEOUT_MS', 120_000, 100, 3_600_000),
    relayMaxBackoffMs: intEnv('RELAY_MAX_BACKOFF_MS', 30_000, 10, 3_600_000),
    ingest: {
      concurrency: intEnv('INGEST_CONCURRENCY', 8, 1, 10_000),
      maxParkMs: intEnv('INGEST_PARK_MAX_MS', 120_000, 100, 86_400_000),
      maxQueuedBytes: intEnv('INGEST_QUEUE_MAX_BYTES', 32 * 1024 * 1024, 1024 * 1024, 4 * 1024 * 1024 * 1024),
    },
    identityTimeoutMs: intEnv('IDENTITY_TIMEOUT_MS', 5000, 100, 120_000),
    verify: {
      concurrency: intEnv('VERIFY_CONCURRENCY', 16, 1, 1000),
      perHost: intEnv('VERIFY_PER_HOST', 4, 1, 100),
      maxAttempts: intEnv('VERIFY_MAX_ATTEMPTS', 10, 1, 1000),
      backoffBaseMs: intEnv('VERIFY_BACKOFF_MS', 2000, 1, 3_600_000),
      backoffMaxMs: 60 * 60_000,
      leaseMs: 60_000,
      pollMs: 1000,
      timeoutMs: intEnv('VERIFY_TIMEOUT_MS', 5000, 100, 120_000),
      maxBytes: intEnv('VERIFY_MAX_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
    },
    backfill: {
      url: httpBase(env('BACKFILL_URL') ?? relayUrl),
      onGap: boolEnv('BACKFILL_ON_GAP', true),
      concurrency: intEnv('BACKFILL_CONCURRENCY', 4, 1, 256),
      perHost: intEnv('BACKFILL_PER_HOST', 2, 1, 64),
      ratePerHost: intEnv('BACKFILL_RATE', 10, 1, 10_000),
      maxAttempts: intEnv('BACKFILL_MAX_ATTEMPTS', 5, 1, 100),
      backoffBaseMs: intEnv('BACKFILL_BACKOFF_MS', 5000, 1, 3_600_000),
      backoffMaxMs: intEnv('BACKFILL_BACKOFF_MAX_MS', 600_000, 1, 86_400_000),
      leaseMs: 5 * 60_000,
      pollMs: 1000,
      discoveryBackoffMs: 1000,
      discoveryMaxBackoffMs: 5 * 60_000,
      timeoutMs: 60_000,
      maxBytes: intEnv('BACKFILL_MAX_BYTES', 64 * 1024 * 1024, 1024, 2 ** 31 - 1),
    },
    admin: {
      password: env('ADMIN_PASSWORD'),
      moderatorDids: moderatorDidsEnv(),
      maxAuthFailures: intEnv('ADMIN_AUTH_MAX_FAILURES', 10, 1, 1_000_000),
      authFailureWindowMs: intEnv('ADMIN_AUTH_WINDOW_SECONDS', 900, 1, 86_400) * 1000,
      spamPerHour: intEnv('SPAM_INVITES_PER_HOUR', 30, 1, 1_000_000),
      spamPerDay: intEnv('SPAM_INVITES_PER_DAY', 200, 1, 10_000_000),
    },
    retention: {
      days: intEnv('RETENTION_DAYS', 30, 1, 36_500),
      intervalMs: intEnv('RETENTION_INTERVAL_SECONDS', 3600, 1, 86_400) * 1000,
      expiryIntervalMs: intEnv('EXPIRY_INTERVAL_SECONDS', 10, 1, 86_400) * 1000,
    },
    api: {
      rateLimitMax: intEnv('RATE_LIMIT_MAX', 300, 0, 1_000_000),
      rateLimitWindowMs: intEnv('RATE_LIMIT_WINDOW_MS', 60_000, 1000, 86_400_000),
      requestTimeoutMs: intEnv('REQUEST_TIMEOUT_MS', 15_000, 100, 600_000),
      maxHeaderBytes: intEnv('MAX_HEADER_BYTES', 16 * 1024, 1024, 1024 * 1024),
      statementTimeoutMs: intEnv('API_STATEMENT_TIMEOUT_MS', 5000, 10, 600_000),
      poolMax: intEnv('API_POOL_MAX', 8, 1, 1000),
      trustProxy: trustProxyEnv(),
    },
    push: {
      pollMs: intEnv('SUBSCRIBE_POLL_MS', 1000, 10, 600_000),
      maxBufferedBytes: intEnv('SUBSCRIBE_MAX_BUFFERED_BYTES', 1024 * 1024, 1024, 1024 * 1024 * 1024),
      slowTimeoutMs: intEnv('SUBSCRIBE_SLOW_TIMEOUT_MS', 10_000, 10, 600_000),
      heartbeatMs: intEnv('SUBSCRIBE_HEARTBEAT_MS', 30_000, 100, 3_600_000),
      maxConnections: intEnv('SUBSCRIBE_MAX_CONNECTIONS', 20_000, 1, 1_000_000),
      maxPerDid: intEnv('SUBSCRIBE_MAX_PER_DID', 10, 1, 1_000_000),
      maxPerAddress: intEnv('SUBSCRIBE_MAX_PER_ADDRESS', 100, 1, 1_000_000),
      // A PDS mints service-auth tokens for at most an hour (60 s by default).
      maxTokenTtlSeconds: intEnv('SUBSCRIBE_MAX_TOKEN_TTL_SECONDS', 3600, 10, 30 * 86_400),
      replayPoolMax: intEnv('SUBSCRIBE_REPLAY_POOL_MAX', 2, 1, 100),
    },
    webhooks: {
      urls: webhookUrlsEnv(),
      secret: env('WEBHOOK_SECRET'),
      timeoutMs: intEnv('WEBHOOK_TIMEOUT_MS', 10_000, 100, 600_000),
      backoffBaseMs: intEnv('WEBHOOK_BACKOFF_MS', 1000, 1, 3_600_000),
      maxBackoffMs: intEnv('WEBHOOK_MAX_BACKOFF_MS', 300_000, 1, 86_400_000),
    },
    version: packageVersion(),
  }
}
