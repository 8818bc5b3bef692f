import path from 'node:path'
import type { Config } from './config.ts'
import { createLogger, type Logger } from './log.ts'
import { startEmbeddedPostgres, type EmbeddedDb } from './db/embedded.ts'
import { migrate } from './db/migrate.ts'
import { createPool, type Pool } from './db/pool.ts'
import { createIdResolver } from './identity.ts'
import { loadLexicons } from './lexicons.ts'
import { Indexer } from './ingest/indexer.ts'
import type { SubjectVerifier } from './ingest/verifier.ts'
import type { Backfiller } from './ingest/backfill.ts'
import { createBackfiller, createVerifier } from './ingest/workers.ts'
import { createServiceAuth } from './api/auth.ts'
import { createApi } from './api/server.ts'
import { LeaderLock } from './db/leader.ts'
import { ModeratorAuth } from './api/admin-auth.ts'
import { Upkeep } from './upkeep.ts'
import { createMetrics } from './metrics.ts'

export interface Service {
  verifier: SubjectVerifier
  backfiller: Backfiller
  /** The API's base URL, e.g. http://127.0.0.1:3000. */
  url: string
  indexer: Indexer
  upkeep: Upkeep
  pool: Pool
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
    relayUrl: config.relayUrl,
    startCursor: config.startCursor,
    lexicons,
    idResolver,
    log: log.child({ component: 'ingest' }),
  })
  // Every replica serves the API; one at a time ingests (stream, proofs, backfill).
  let leading = false
  const ingest = {
    async start() {
      await indexer.start()
      verifier.start()
      backfiller.start()
      leading = true
    },
    async stop() {
      if (!leading) return
      leading = false
      await Promise.all([indexer.stop(), verifier.stop(), backfiller.stop()])
    },
  }
  // Leadership changes one at a time, in order.
  let transition: Promise<void> = Promise.resolve()
  const lock = new LeaderLock(databaseUrl, `chive-collab-indexer:${config.databaseSchema}`, (err) => {
    log.error({ err: err.message }, 'leadership lost with the database connection; ingest stops')
    transition = transition.then(() => ingest.stop())
  })
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
  const metrics = createMetrics({ pool, relayUrl: config.relayUrl, indexer, verifier, backfiller })
  const api = createApi(
    {
      pool,
      lexicons,
      auth,
      relayUrl: config.relayUrl,
      version: config.version,
      isLeader: () => leading,
      moderators: new ModeratorAuth(config.admin, auth, log.child({ component: 'admin' })),
      admin: config.admin,
    },
    log,
    { limits: config.api, metrics },
  )
  const upkeep = new Upkeep({ pool, days: config.retention.days, intervalMs: config.retention.intervalMs, log: log.child({ component: 'upkeep' }) })
  await campaign()
  const campaigner = setInterval(() => void campaign(), config.leaderRetryMs)
  upkeep.start()
  const address = await api.listen({ port: config.port, host: config.host })
  log.info({ address, relay: config.relayUrl, serviceDid: config.serviceDid, leader: leading }, 'service ready')
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
        await api.close()
        await pool.end()
        await embedded?.stop()
      })()
      return stopped
    },
  }
}
