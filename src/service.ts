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
import { createServiceAuth } from './api/auth.ts'
import { createApi } from './api/server.ts'
import { ModeratorAuth } from './api/admin-auth.ts'
import { Upkeep } from './upkeep.ts'

export interface Service {
  verifier: SubjectVerifier
  /** The API's base URL, e.g. http://127.0.0.1:3000. */
  url: string
  indexer: Indexer
  upkeep: Upkeep
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
  const indexer = new Indexer({
    verifier,
    pool,
    relayUrl: config.relayUrl,
    startCursor: config.startCursor,
    lexicons,
    idResolver,
    log: log.child({ component: 'ingest' }),
  })
  const auth = createServiceAuth(config.serviceDid, idResolver)
  const api = createApi(
    {
      pool,
      lexicons,
      auth,
      relayUrl: config.relayUrl,
      version: config.version,
      moderators: new ModeratorAuth(config.admin, auth, log.child({ component: 'admin' })),
      admin: config.admin,
    },
    log,
  )
  const upkeep = new Upkeep({ pool, days: config.retention.days, intervalMs: config.retention.intervalMs, log: log.child({ component: 'upkeep' }) })
  await indexer.start()
  verifier.start()
  upkeep.start()
  const address = await api.listen({ port: config.port, host: config.host })
  log.info({ address, relay: config.relayUrl, serviceDid: config.serviceDid }, 'service ready')
  const url = new URL(address)
  if (url.hostname === '0.0.0.0' || url.hostname === '[::]') url.hostname = '127.0.0.1'
  let stopped: Promise<void> | undefined
  return {
    url: url.origin,
    indexer,
    verifier,
    upkeep,
    pool,
    log,
    stop() {
      stopped ??= (async () => {
        await Promise.all([indexer.stop(), verifier.stop(), upkeep.stop()])
        await api.close()
        await pool.end()
        await embedded?.stop()
      })()
      return stopped
    },
  }
}
