import { readFileSync } from 'node:fs'

/** Fastify's `trustProxy`, in the forms that do not trust every hop a client may have written. */
export type TrustProxy = false | number | string[]

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
  /** Allow DID documents and PDSes on loopback / private addresses (tests, local networks). */
  allowPrivateNetwork: boolean
  /** How often a replica that does not ingest tries to take over. */
  leaderRetryMs: number
  /** How often the leader proves its lock connection alive (and how long a check may take). */
  leaderCheckMs: number
  /** A relay connection that sends nothing for this long is presumed stalled and reopened. */
  relayIdleTimeoutMs: number
  /** Cap of the reconnect backoff. */
  relayMaxBackoffMs: number
  /** Per-repo processing of the stream (see src/ingest/repo-queue.ts). */
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

const env = (name: string): string | undefined => {
  const v = process.env[name]
  return v === undefined || v.trim() === '' ? undefined : v.trim()
}

/**
 * TRUST_PROXY: a hop count, or addresses / CIDR ranges of the proxies. `true` is read as one hop:
 * trusting every hop would let any client name its own address in `X-Forwarded-For` (and so
 * escape the rate limit and the admin sign-in limit).
 */
export const parseTrustProxy = (raw: string | undefined): TrustProxy => {
  if (raw === undefined) return false
  const v = raw.trim().toLowerCase()
  if (v === '' || v === 'false' || v === '0' || v === 'no' || v === 'off') return false
  if (v === 'true' || v === 'yes' || v === 'on') return 1
  if (/^\d+$/.test(v)) {
    const hops = Number(v)
    if (hops > 100) throw new Error(`TRUST_PROXY must be a hop count up to 100, or proxy addresses: ${raw}`)
    return hops
  }
  const addresses = v.split(/[\s,]+/).filter(Boolean)
  const address = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-f:]+:[0-9a-f:.]*)(\/\d{1,3})?$|^(loopback|linklocal|uniquelocal)$/
  for (const a of addresses) {
    if (!address.test(a)) throw new Error(`TRUST_PROXY: not a hop count, an address or a CIDR range: ${a}`)
  }
  return addresses
}

const trustProxyEnv = (): TrustProxy => parseTrustProxy(env('TRUST_PROXY'))

const intEnv = (name: string, fallback: number, min: number, max: number): number => {
  const raw = env(name)
  if (raw === undefined) return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`${name} must be an integer between ${min} and ${max}, got "${raw}"`)
  }
  return n
}

const boolEnv = (name: string, fallback: boolean): boolean => {
  const raw = env(name)
  if (raw === undefined) return fallback
  if (/^(1|true|yes|on)$/i.test(raw)) return true
  if (/^(0|false|no|off)$/i.test(raw)) return false
  throw new Error(`${name} must be true or false, got "${raw}"`)
}

/** Accepts ws://, wss://, http:// and https:// base URLs; the stream is always a WebSocket. */
export const normaliseRelayUrl = (raw: string): string => {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new Error(`RELAY_URL is not a URL: "${raw}"`)
  }
  const scheme = { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' }[url.protocol]
  if (!scheme) throw new Error(`RELAY_URL must be ws://, wss://, http:// or https://, got "${raw}"`)
  url.protocol = scheme
  url.search = ''
  url.hash = ''
  return url.toString().replace(/\/+$/, '')
}

/**
 * A Jetstream instance's base URL (ws:// or wss://), from what an operator may paste: with or
 * without `/subscribe` or the v2 method path, a query string, http(s) for ws(s).
 */
export const normaliseJetstreamUrl = (raw: string): string => {
  const url = new URL(normaliseRelayUrl(raw))
  url.pathname = url.pathname.replace(/\/(subscribe|xrpc\/network\.bsky\.jetstream\.subscribeEvents)\/?$/, '')
  return url.toString().replace(/\/+$/, '')
}

/** A RELAY_URL that is a Jetstream (by its `/subscribe` path or a `jetstreamN.` host), not a relay. */
export const looksLikeJetstream = (raw: string): boolean => {
  try {
    const url = new URL(raw)
    return /\/subscribe\/?$/.test(url.pathname) || /^jetstream\d*\./.test(url.hostname)
  } catch {
    return false
  }
}

/** Where the stored cursor of this configuration's stream lives: one key for every Jetstream instance. */
export const streamKey = (config: Pick<Config, 'relayUrl' | 'jetstream'>): string => (config.jetstream ? 'jetstream' : config.relayUrl)

/** The http(s) form of a relay URL, for its XRPC queries. */
export const httpBase = (raw: string): string => {
  const url = new URL(normaliseRelayUrl(raw))
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:'
  return url.toString().replace(/\/+$/, '')
}

const isPrivateHost = (raw: string): boolean => {
  const host = new URL(raw).hostname
  return (
    host === 'localhost' ||
    host.endsWith('.localhost') ||
    /^127\./.test(host) ||
    /^10\./.test(host) ||
    /^192\.168\./.test(host) ||
    /^172\.(1[6-9]|2\d|3[01])\./.test(host) ||
    host === '[::1]'
  )
}

const schemaEnv = (): string => {
  const schema = env('DATABASE_SCHEMA') ?? 'public'
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error(`DATABASE_SCHEMA must be a plain lower-case identifier, got "${schema}"`)
  return schema
}

const moderatorDidsEnv = (): string[] => {
  const dids = (env('MODERATOR_DIDS') ?? '').split(/[\s,]+/).filter((d) => d !== '')
  for (const did of dids) {
    if (!/^did:(plc|web):[a-zA-Z0-9._:%-]+$/.test(did)) throw new Error(`MODERATOR_DIDS must list did:plc or did:web DIDs, got "${did}"`)
  }
  return dids
}

const webhookUrlsEnv = (): string[] => {
  const urls = (env('WEBHOOK_URLS') ?? '').split(/[\s,]+/).filter((u) => u !== '')
  for (const u of urls) {
    let url: URL
    try {
      url = new URL(u)
    } catch {
      throw new Error(`WEBHOOK_URLS must list http(s) URLs, got "${u}"`)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`WEBHOOK_URLS must list http(s) URLs, got "${u}"`)
  }
  const secret = env('WEBHOOK_SECRET')
  // Unsigned deliveries would let anyone who finds the receiver's URL forge notifications.
  if (urls.length > 0 && (secret === undefined || secret.length < 16)) {
    throw new Error('WEBHOOK_URLS needs WEBHOOK_SECRET (at least 16 characters) to sign the deliveries')
  }
  return urls
}

const packageVersion = (): string => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string
  }
  return pkg.version
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
    reconcileMs: intEnv('JETSTREAM_RECONCILE_HOURS', 24, 0, 24 * 365) * 3_600_000,
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
    // A relay on a private address is a local network: its PDSes and PLC live there too.
    allowPrivateNetwork: boolEnv(
      'ALLOW_PRIVATE_NETWORK',
      isPrivateHost(relayUrl) || isPrivateHost(plcUrl) || (jetstream?.urls.some(isPrivateHost) ?? false),
    ),
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
