/**
 * Backfill speed against a local PDS: R repos holding K invites each (plus their subjects),
 * synced by verified getRepo snapshots at several per-host concurrencies.
 * Usage: npm run bench:backfill [-- REPOS INVITES]
 */
import { createAccount } from './support/corpus.ts'
import { migrate } from '../src/db/migrate.ts'
import { createPool } from '../src/db/pool.ts'
import { backfillProgress, createDidRun } from '../src/db/backfill.ts'
import { createIdResolver, createProofFetch } from '../src/atproto/identity.ts'
import { loadLexicons } from '../src/atproto/lexicons.ts'
import { createLogger } from '../src/lib/log.ts'
import { Backfiller } from '../src/workers/backfill.ts'
import { startLocalNetwork } from '../tests/support/network.ts'
import { testPostgres } from '../tests/support/postgres.ts'

const REPOS = Number(process.argv[2] ?? 40)
const INVITES = Number(process.argv[3] ?? 5)
const log = createLogger('silent')

const db = await testPostgres()
const net = await startLocalNetwork()
const dids: string[] = []
const { did: inviteeDid } = await createAccount(net.pdsUrl, 'bee')
for (let r = 0; r < REPOS; r++) {
  const { agent, did } = await createAccount(net.pdsUrl, `bf${r}x`)
  dids.push(did)
  const writes = []
  for (let i = 0; i < INVITES; i++) {
    writes.push({ $type: 'com.atproto.repo.applyWrites#create' as const, collection: 'pub.chive.graph.node', value: { title: `n${i}`, createdAt: new Date().toISOString() } })
  }
  const nodes = await agent.com.atproto.repo.applyWrites({ repo: did, writes })
  const results = nodes.data.results as { uri: string; cid: string }[]
  await agent.com.atproto.repo.applyWrites({
    repo: did,
    writes: results.map((n) => ({
      $type: 'com.atproto.repo.applyWrites#create' as const,
      collection: 'pub.chive.collaboration.invite',
      value: { subject: { uri: n.uri, cid: n.cid }, invitee: inviteeDid, createdAt: new Date().toISOString() },
    })),
  })
}

const lexicons = loadLexicons()
const rows: string[] = []
for (const perHost of [1, 2, 4, 8]) {
  const schema = `bench_backfill_${perHost}_${Date.now()}`
  await migrate(db.url, schema, log)
  const pool = createPool(db.url, schema)
  const backfiller = new Backfiller({
    pool,
    idResolver: createIdResolver({ plcUrl: net.plcUrl, allowPrivateNetwork: true }),
    lexicons,
    log,
    fetch: createProofFetch({ allowPrivateNetwork: true, timeoutMs: 60_000, maxBytes: 1 << 26 }),
    discoveryUrl: net.pdsUrl,
    concurrency: 8,
    perHost,
    ratePerHost: 10_000,
    maxAttempts: 3,
    backoffBaseMs: 1000,
    backoffMaxMs: 60_000,
    leaseMs: 300_000,
    pollMs: 20,
    discoveryBackoffMs: 1000,
    discoveryMaxBackoffMs: 60_000,
  })
  const runId = await createDidRun(pool, dids, 'bench')
  const started = performance.now()
  backfiller.start()
  let records = 0
  for (;;) {
    const run = (await backfillProgress(pool)).runs.find((r) => r.id === runId)
    if (run?.status === 'done') {
      records = run.records
      if (run.repos.failed > 0) throw new Error(`${run.repos.failed} repos failed`)
      break
    }
    await new Promise((r) => setTimeout(r, 10))
  }
  const seconds = (performance.now() - started) / 1000
  await backfiller.stop()
  await pool.end()
  rows.push(`| ${perHost} | ${REPOS} | ${records} | ${seconds.toFixed(2)} | ${(REPOS / seconds).toFixed(1)} | ${(records / seconds).toFixed(1)} |`)
}
console.log(`backfill of ${REPOS} repos x ${INVITES} invites (+ ${INVITES} subjects each) from one local PDS, verified getRepo`)
console.log('| per-host concurrency | repos | records | seconds | repos/s | records/s |')
console.log('|---|---|---|---|---|---|')
for (const row of rows) console.log(row)
await net.close()
await db.stop()
process.exit(0)
