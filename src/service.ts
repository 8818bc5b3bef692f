import path from 'node:path'
import type { Config } from './config.ts'
import { createLogger, type Logger } from './log.ts'
import { startEmbeddedPostgres, type EmbeddedDb } from './db/embedded.ts'
import { migrate } from './db/migrate.ts'
import { createPool, type Pool } from './db/pool.ts'
import { createIdResolver, createProofFetch } from './identity.ts'
import { loadLexicons } from './lexicons.ts'
import { Indexer } from './ingest/indexer.ts'
import { SubjectVerifier } from './ingest/verifier.ts'
import { Backfiller } from './ingest/backfill.ts'
import { createServiceAuth } from './api/auth.ts'
import { createApi } from './api/server.ts'
import { createMetrics } from './metrics.ts'

export interface Service {
  verifier: SubjectVerifier
  backfiller: Backfiller
  /** The API's base URL, e.g. http://127.0.0.1:3000. */
  url: string
  indexer: Indexer
  pool: Pool
  log: Logger
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
  const idResolver = createIdResolver({ plcUrl: config.plcUrl, allowPrivateNetwork: config.allowPrivateNetwork })
  const lexicons = loadLexicons()
  const verifier = new SubjectVerifier({
    pool,
    idResolver,
    log: log.child({ component: 'verify' }),
    fetch: createProofFetch({
      allowPrivateNetwork: config.allowPrivateNetwork,
      timeoutMs: config.verify.timeoutMs,
      maxBytes: config.verify.maxBytes,
    }),
    concurrency: config.verify.concurrency,
    perHost: config.verify.perHost,
    maxAttempts: config.verify.maxAttempts,
    backoffBaseMs: config.verify.backoffBaseMs,
  })
  let indexer: Indexer | undefined
  const backfiller = new Backfiller({
    pool,
    idResolver,
    lexicons,
    log: log.child({ component: 'backfill' }),
    fetch: createProofFetch({
      allowPrivateNetwork: config.allowPrivateNetwork,
      timeoutMs: 60_000,
      maxBytes: config.backfill.maxBytes,
    }),
    discoveryUrl: config.backfill.url,
    concurrency: config.backfill.concurrency,
    perHost: config.backfill.perHost,
    ratePerHost: config.backfill.ratePerHost,
    maxAttempts: config.backfill.maxAttempts,
    backoffBaseMs: config.backfill.backoffBaseMs,
    onRepo: (did, rev, dataCid) => indexer?.trackRepo(did, rev, dataCid),
    onQueued: () => verifier.wake(),
  })
  indexer = new Indexer({
    verifier,
    backfillOnGap: config.backfill.onGap,
    onBackfillRequested: () => backfiller.wake(),
    pool,
    relayUrl: config.relayUrl,
    startCursor: config.startCursor,
    lexicons,
    idResolver,
    log: log.child({ component: 'ingest' }),
  })
  const metrics = createMetrics({ pool, relayUrl: config.relayUrl, indexer, verifier, backfiller })
  const api = createApi(
    { pool, lexicons, auth: createServiceAuth(config.serviceDid, idResolver), relayUrl: config.relayUrl, version: config.version },
    log,
    { limits: config.api, metrics },
  )
  await indexer.start()
  verifier.start()
  backfiller.start()
  const address = await api.listen({ port: config.port, host: config.host })
  log.info({ address, relay: config.relayUrl, serviceDid: config.serviceDid }, 'service ready')
  const url = new URL(address)
  if (url.hostname === '0.0.0.0' || url.hostname === '[::]') url.hostname = '127.0.0.1'
  let stopped: Promise<void> | undefined
  return {
    url: url.origin,
    indexer,
    verifier,
    backfiller,
    pool,
    log,
    stop() {
      stopped ??= (async () => {
        await Promise.all([indexer?.stop(), verifier.stop(), backfiller.stop()])
        await api.close()
        await pool.end()
        await embedded?.stop()
      })()
      return stopped
    },
  }
}
