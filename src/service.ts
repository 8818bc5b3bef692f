import path from 'node:path'
import { isPrivateHost, streamKey, type Config } from './config.ts'
import { createLogger, type Logger } from './lib/log.ts'
import { startEmbeddedPostgres, type EmbeddedDb } from './db/embedded.ts'
import { migrate } from './db/migrate.ts'
import { createPool, type Pool } from './db/pool.ts'
import { createIdResolver, createProofFetch } from './atproto/identity.ts'
import { RepoKeys } from './atproto/keys.ts'
import { RecordProofs } from './atproto/record-proof.ts'
import { loadLexicons } from './atproto/lexicons.ts'
import { Indexer } from './pipeline/indexer.ts'
import type { SubjectVerifier } from './workers/subject-verifier.ts'
import type { Backfiller } from './workers/backfill.ts'
import { createBackfiller, createVerifier } from './workers/build.ts'
import { createServiceAuth } from './api/auth.ts'
import { createApi } from './api/server.ts'
import { LeaderLock } from './db/leader.ts'
import { fenceWrites } from './db/fence.ts'
import { ModeratorAuth } from './api/admin-auth.ts'
import { HandleNames } from './api/dashboard/handles.ts'
import { Upkeep } from './workers/upkeep.ts'
import { createMetrics, type Metrics } from './api/metrics.ts'
import { cachedFor } from './api/cache.ts'
import { Fanout } from './push/fanout.ts'
import { attachSubscriptions } from './push/subscription.ts'
import { WebhookDelivery } from './push/webhook.ts'

export interface Service {
  verifier: SubjectVerifier
  backfiller: Backfiller
  /** The API's base URL, e.g. http://127.0.0.1:3000. */
  url: string
  indexer: Indexer
  upkeep: Upkeep
  /** The ingest side's pool (stream, proofs, backfill, upkeep). */
  pool: Pool
  /** The API's pool: its own connections, each statement under `API_STATEMENT_TIMEOUT_MS`. */
  apiPool: Pool
  log: Logger
  /** Whether this replica holds the ingest leadership. */
  readonly leader: boolean
  /** Stops reading, commits the cursor, closes the API and the database. */
  stop(): Promise<void>
}

/** Migrations, the ingester and the API, in one process. */
export const startService = async (config: Config, log: Logger = createLogger(config.logLevel)): Promise<Service> => {
  let embedded: EmbeddedDb | undefined
  let databaseUrl = config.databaseUrl
  if (databaseUrl === undefined) {
    embedded = await startEmbeddedPostgres({ dir: path.join(config.dataDir, 'pg'), port: config.embeddedPgPort, log })
    databaseUrl = embedded.url
    log.info({ dir: path.resolve(config.dataDir, 'pg'), port: config.embeddedPgPort }, 'embedded postgres started')
  }
  await migrate(databaseUrl, config.databaseSchema, log)
  const pool = createPool(databaseUrl, config.databaseSchema)
  // A flood of API requests must not take the connections the ingest commits need, nor hold
  // them with slow queries: the API has a pool of its own, and its statements a time limit.
  const apiPool = createPool(databaseUrl, config.databaseSchema, config.api.poolMax, config.api.statementTimeoutMs)
  // Replays from an old cursor page through the whole feed: a pool of their own, so that a flood
  // of them queues there and the queries keep theirs.
  const replayPool = createPool(databaseUrl, config.databaseSchema, config.push.replayPoolMax, config.api.statementTimeoutMs)
  const idResolver = createIdResolver({ plcUrl: config.plcUrl, allowPrivateNetwork: config.allowPrivateNetwork, timeoutMs: config.identityTimeoutMs })
  const lexicons = loadLexicons()
  const deps = { pool, idResolver, lexicons, log }
  const verifier = createVerifier(config, deps)
  // Declared before the backfiller, which tells it about synced repos.
  let indexer: Indexer | undefined
  const backfiller = createBackfiller(config, deps, {
    onRepo: (did, rev, dataCid) => indexer?.trackRepo(did, rev, dataCid),
    onQueued: () => verifier.wake(),
  })
  indexer = new Indexer({
    verifier,
    backfillOnGap: config.backfill.onGap,
    relayIdleTimeoutMs: config.relayIdleTimeoutMs,
    relayMaxBackoffMs: config.relayMaxBackoffMs,
    limits: config.ingest,
    onBackfillRequested: () => backfiller.wake(),
    pool,
    relayUrl: streamKey(config),
    jetstream: config.jetstream && {
      ...config.jetstream,
      fetch: createProofFetch({ allowPrivateNetwork: config.allowPrivateNetwork, timeoutMs: config.verify.timeoutMs, maxBytes: config.verify.maxBytes }),
    },
    startCursor: config.startCursor,
    lexicons,
    idResolver,
    log: log.child({ component: 'ingest' }),
  })
  // Every replica serves the API; one at a time ingests (stream, proofs, backfill).
  let leading = false
  // Webhooks are delivered by the leader (set below, once the fanout exists): a leader killed
  // mid-delivery is replaced within LEADER_RETRY_MS, and its successor takes the endpoints over.
  let webhooks: WebhookDelivery | undefined
  const ingest = {
    async start() {
      await indexer.start()
      verifier.start()
      backfiller.start()
      await webhooks?.start()
      leading = true
    },
    async stop() {
      if (!leading) return
      leading = false
      await Promise.all([indexer.stop(), verifier.stop(), backfiller.stop(), webhooks?.stop()])
    },
  }
  // Leadership changes one at a time, in order.
  let transition: Promise<void> = Promise.resolve()
  const lock = new LeaderLock(
    databaseUrl,
    `chive-collab-indexer:${config.databaseSchema}`,
    (err) => {
      log.error({ err: err.message }, 'leadership lost; ingest stops')
      transition = transition.then(() => ingest.stop())
    },
    { schema: config.databaseSchema, checkIntervalMs: config.leaderCheckMs },
  )
  // The leader's writes (stream batches, status, proofs, reconciliation, webhook delivery)
  // commit only under this replica's leader epoch (see src/db/leader.ts, src/db/fence.ts).
  fenceWrites(pool, { epoch: () => lock.epoch, onDeposed: (err) => lock.deposed(err) })
  let stopping = false
  // One attempt at a time: a connection attempt can outlast the retry interval.
  let attempt: Promise<void> | null = null
  const campaign = () => (attempt ??= tryToLead().finally(() => (attempt = null)))
  const tryToLead = async () => {
    await transition
    if (stopping || lock.held || !(await lock.tryAcquire())) return
    // The service may have begun stopping while the lock was being taken.
    if (stopping) return lock.release()
    log.info('leading: this replica ingests')
    transition = transition.then(async () => {
      try {
        await ingest.start()
      } catch (err) {
        log.error({ err }, 'ingest could not start; leadership released')
        await ingest.stop()
        await lock.release()
      }
    })
    await transition
  }
  const auth = createServiceAuth(config.serviceDid, idResolver)
  // Every replica pushes: the feed reaches each one through Postgres (LISTEN/NOTIFY).
  const fanout = new Fanout({ pool: apiPool, databaseUrl, schema: config.databaseSchema, pollMs: config.push.pollMs, log: log.child({ component: 'push' }) })
  await fanout.start()
  webhooks = new WebhookDelivery({
    pool,
    urls: config.webhooks.urls,
    secret: config.webhooks.secret ?? '',
    timeoutMs: config.webhooks.timeoutMs,
    backoffBaseMs: config.webhooks.backoffBaseMs,
    maxBackoffMs: config.webhooks.maxBackoffMs,
    watch: (fn) => fanout.watch(fn),
    pollMs: config.push.pollMs,
    log: log.child({ component: 'webhook' }),
  })
  let subscriptions: ReturnType<typeof attachSubscriptions> | undefined
  const push = {
    fanout: () => fanout.status,
    subscriptions: () => subscriptions?.stats,
    webhookUrls: config.webhooks.urls,
  }
  const scraped = createMetrics({ pool: apiPool, relayUrl: streamKey(config), indexer, verifier, backfiller, push })
  // Unauthenticated and never rate-limited: a scrape's queries are shared for a second.
  const metrics: Metrics = { ...scraped, scrape: cachedFor(1000, () => scraped.scrape()) }
  const api = createApi(
    {
      pool: apiPool,
      lexicons,
      auth,
      relayUrl: streamKey(config),
      source: config.jetstream ? { mode: 'jetstream', urls: config.jetstream.urls } : { mode: 'firehose', urls: [config.relayUrl] },
      version: config.version,
      isLeader: () => leading,
      moderators: new ModeratorAuth(config.admin, auth, log.child({ component: 'admin' })),
      admin: config.admin,
      push,
      handles: new HandleNames(idResolver),
      // Keys of its own: the ingester's belong to the leader, and these calls reach every replica.
      records: new RecordProofs({
        idResolver,
        keys: new RepoKeys(idResolver),
        fetch: createProofFetch({ allowPrivateNetwork: config.allowPrivateNetwork, timeoutMs: config.verify.timeoutMs, maxBytes: config.verify.maxBytes }),
      }),
    },
    log,
    { limits: config.api, metrics },
  )
  const upkeep = new Upkeep({
    pool,
    days: config.retention.days,
    intervalMs: config.retention.intervalMs,
    expiryIntervalMs: config.retention.expiryIntervalMs,
    log: log.child({ component: 'upkeep' }),
  })
  await campaign()
  const campaigner = setInterval(() => void campaign(), config.leaderRetryMs)
  upkeep.start()
  subscriptions = attachSubscriptions(api.server, {
    replayPool,
    lexicons,
    auth,
    fanout,
    limits: { ...config.push, rateLimitMax: config.api.rateLimitMax, rateLimitWindowMs: config.api.rateLimitWindowMs, trustProxy: config.api.trustProxy },
    log: log.child({ component: 'push' }),
  })
  const address = await api.listen({ port: config.port, host: config.host })
  log.info({ address, source: config.jetstream ? { jetstream: config.jetstream.urls } : { relay: config.relayUrl }, serviceDid: config.serviceDid, leader: leading }, 'service ready')
  // Otherwise the first sign of it is a moderator who cannot sign in.
  if (config.admin.password === undefined && config.admin.moderatorDids.length === 0) {
    log.warn('neither ADMIN_PASSWORD nor MODERATOR_DIDS is set: nobody can use the admin API or the dashboard')
  }
  const privateSources = [config.relayUrl, config.plcUrl, ...(config.jetstream?.urls ?? [])].filter(isPrivateHost)
  if (privateSources.length > 0 && !config.allowPrivateNetwork) {
    log.warn({ urls: privateSources }, 'a source is on a private address, but DID documents and PDSes there are refused: set ALLOW_PRIVATE_NETWORK=true if they live on that network too')
  }
  const url = new URL(address)
  if (url.hostname === '0.0.0.0' || url.hostname === '[::]') url.hostname = '127.0.0.1'
  let stopped: Promise<void> | undefined
  return {
    url: url.origin,
    indexer,
    verifier,
    backfiller,
    upkeep,
    pool,
    apiPool,
    log,
    get leader() {
      return leading
    },
    stop() {
      stopped ??= (async () => {
        stopping = true
        clearInterval(campaigner)
        await attempt
        await transition
        await Promise.all([ingest.stop(), upkeep.stop()])
        await lock.release()
        subscriptions?.close()
        await fanout.stop()
        await api.close()
        await Promise.all([pool.end(), apiPool.end(), replayPool.end()])
        await embedded?.stop()
      })()
      return stopped
    },
  }
}
