import net from 'node:net'
import path from 'node:path'
import { parseArgs } from 'node:util'
import cliProgress from 'cli-progress'
import { loadConfig } from './config.ts'
import { createLogger } from './lib/log.ts'
import { startEmbeddedPostgres } from './db/embedded.ts'
import { migrate } from './db/migrate.ts'
import { createPool } from './db/pool.ts'
import { activeRuns, backfillProgress, createDidRun, requestFullBackfill } from './db/backfill.ts'
import { createIdResolver } from './atproto/identity.ts'
import { loadLexicons } from './atproto/lexicons.ts'
import { createBackfiller, createVerifier } from './workers/build.ts'

const USAGE = `usage: npm run backfill -- [--did <did>]... [--concurrency N] [--per-host N] [--rate N]

Syncs repos that hold Chive collaboration records from their PDS (verified getRepo snapshots).
Without --did: a full backfill, discovered from BACKFILL_URL (default: RELAY_URL); an unfinished
full backfill is resumed where it stopped. Uses the same environment as npm start.`

const portAnswers = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })

const main = async (): Promise<number> => {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      did: { type: 'string', multiple: true },
      concurrency: { type: 'string' },
      'per-host': { type: 'string' },
      rate: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help || positionals[0] !== 'backfill') {
    console.log(USAGE)
    return values.help ? 0 : 2
  }
  const config = loadConfig()
  const log = createLogger(process.stdout.isTTY ? 'warn' : config.logLevel)
  const number = (raw: string | undefined, fallback: number, name: string) => {
    if (raw === undefined) return fallback
    const n = Number(raw)
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`)
    return n
  }
  const concurrency = number(values.concurrency, config.backfill.concurrency, 'concurrency')
  const perHost = number(values['per-host'], config.backfill.perHost, 'per-host')
  const rate = number(values.rate, config.backfill.ratePerHost, 'rate')
  const dids = values.did ?? []
  for (const did of dids) if (!/^did:(plc|web):[a-zA-Z0-9._:%-]+$/.test(did)) throw new Error(`not a did:plc or did:web: ${did}`)

  // The service's embedded Postgres is shared when it runs; otherwise start it here.
  let databaseUrl = config.databaseUrl
  let stopEmbedded: (() => Promise<void>) | undefined
  if (databaseUrl === undefined) {
    if (await portAnswers(config.embeddedPgPort)) {
      databaseUrl = `postgres://postgres:postgres@127.0.0.1:${config.embeddedPgPort}/postgres`
    } else {
      const db = await startEmbeddedPostgres({ dir: path.join(config.dataDir, 'pg'), port: config.embeddedPgPort, log })
      databaseUrl = db.url
      stopEmbedded = db.stop
    }
  }
  await migrate(databaseUrl, config.databaseSchema, log)
  const pool = createPool(databaseUrl, config.databaseSchema)
  let runId: number
  if (dids.length > 0) {
    runId = await createDidRun(pool, dids, 'operator: npm run backfill --did')
  } else {
    const resumed = (await activeRuns(pool)).find((r) => r.kind === 'full')
    runId = resumed?.id ?? ((await requestFullBackfill(pool, 'operator: npm run backfill')) as number)
    if (resumed) console.log(`resuming backfill #${runId} (${resumed.reason})`)
  }

  const idResolver = createIdResolver({ plcUrl: config.plcUrl, allowPrivateNetwork: config.allowPrivateNetwork })
  const lexicons = loadLexicons()
  const deps = { pool, idResolver, lexicons, log }
  const verifier = createVerifier(config, deps)
  const backfiller = createBackfiller(config, deps, { concurrency, perHost, ratePerHost: rate, onQueued: () => verifier.wake() })
  verifier.start()
  backfiller.start()

  let interrupted = false
  process.once('SIGINT', () => (interrupted = true))
  process.once('SIGTERM', () => (interrupted = true))
  const started = Date.now()
  const bar = process.stdout.isTTY
    ? new cliProgress.SingleBar(
        { format: 'backfill #{run} {bar} {percentage}% | {value}/{total} repos | {records} records | {rate} repos/s | ETA {eta_formatted}' },
        cliProgress.Presets.shades_classic,
      )
    : null
  bar?.start(1, 0, { run: runId, records: 0, rate: '0.0' })
  let lastLine = 0
  let summary = { total: 0, done: 0, failed: 0, left: 0, records: 0 }
  for (;;) {
    const progress = await backfillProgress(pool)
    const run = progress.runs.find((r) => r.id === runId)
    if (run) {
      const finished = run.repos.done + run.repos.failed + run.repos.left
      const seconds = (Date.now() - started) / 1000
      summary = { total: run.repos.total, done: run.repos.done, failed: run.repos.failed, left: run.repos.left, records: run.records }
      if (bar) {
        bar.setTotal(Math.max(1, run.repos.total))
        bar.update(finished, { run: runId, records: run.records, rate: (finished / Math.max(seconds, 0.001)).toFixed(1) })
      } else if (Date.now() - lastLine > 5000 || run.status === 'done') {
        lastLine = Date.now()
        console.log(
          `backfill #${runId} ${run.status}: ${finished}/${run.repos.total} repos, ${run.records} records, ${run.repos.failed} failed, ${run.repos.left} retrying as resyncs`,
        )
      }
      if (run.status === 'done') break
    }
    if (interrupted) break
    await new Promise((r) => setTimeout(r, 500))
  }
  bar?.stop()
  await Promise.all([backfiller.stop(), verifier.stop()])
  await pool.end()
  await stopEmbedded?.()
  const seconds = (Date.now() - started) / 1000
  if (interrupted) {
    console.log(`interrupted: progress is saved; run the same command to resume backfill #${runId}`)
    return 130
  }
  console.log(
    `backfill #${runId} done in ${seconds.toFixed(1)} s: ${summary.done} repos synced, ${summary.failed} failed (a verdict), ` +
      `${summary.records} records (${(summary.done / seconds).toFixed(1)} repos/s, ${(summary.records / seconds).toFixed(1)} records/s)`,
  )
  // Hosts that stayed unreachable do not hold the run open: their repos are retried as resyncs
  // (by the service's worker, or the next run of this command) until they are synced.
  if (summary.left > 0) console.log(`${summary.left} repos could not be fetched yet; they are retried as resyncs until they are`)
  return summary.failed + summary.left > 0 ? 1 : 0
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err)
    process.exit(2)
  },
)
