/**
 * API under load: 1,000,000 invites over 200,000 invitees in Postgres; an invitee's pending inbox
 * (authenticated, one token reused as the frontend does) and a subject's collaborators, loaded by
 * autocannon from the same machine; Chive's own listInvites strategy on the same data beside it.
 * The service runs as `npm start` runs it, in a process of its own; autocannon runs here.
 * Usage: npm run bench:api [-- INVITES INVITEES SECONDS CONNECTIONS]; BENCH_JSON=file also writes
 * the figures as JSON.
 */
import { writeFileSync } from 'node:fs'
import autocannon from 'autocannon'
import Fastify from 'fastify'
import { createAccount } from './support/corpus.ts'
import { chiveListInvites, generateInvites } from '../src/db/bench-data.ts'
import { createPool } from '../src/db/pool.ts'
import { startLocalNetwork } from '../tests/support/network.ts'
import { runService } from '../tests/support/service-process.ts'
import { testPostgres } from '../tests/support/postgres.ts'

const INVITES = Number(process.argv[2] ?? 1_000_000)
const INVITEES = Number(process.argv[3] ?? 200_000)
const SECONDS = Number(process.argv[4] ?? 10)
// Enough concurrent clients to hold the service at its throughput; more only queue.
const CONNECTIONS = Number(process.argv[5] ?? 8)
const SERVICE_DID = 'did:web:bench.test'
const LXM = 'pub.chive.collaboration.listInvites'

const db = await testPostgres()
const net = await startLocalNetwork()
const { agent, did: me } = await createAccount(net.pdsUrl, 'me')
const schema = `bench_api_${Date.now()}`
const env = {
  DATABASE_URL: db.url,
  DATABASE_SCHEMA: schema,
  // Nothing to ingest: the data is generated straight into the tables.
  RELAY_URL: 'ws://127.0.0.1:9',
  PLC_URL: net.plcUrl,
  ALLOW_PRIVATE_NETWORK: 'true',
  SERVICE_DID,
  LOG_LEVEL: 'info',
  BACKFILL_ON_GAP: 'false',
  // Load generators poll as fast as the API answers.
  RATE_LIMIT_MAX: '0',
}

interface Load {
  rps: number
  p50: number
  p99: number
  failed: number
}
const load = async (url: string, headers: Record<string, string> = {}): Promise<Load> => {
  const res = await autocannon({ url, connections: CONNECTIONS, duration: SECONDS, headers, timeout: 30 })
  // Only answers that served the query count: a fast 401 or 500 is no throughput.
  return { rps: res['2xx'] / res.duration, p50: res.latency.p50, p99: res.latency.p99, failed: res.non2xx + res.errors + res.timeouts }
}
const rows: [string, string, Load][] = []

await runService(env, async (address) => {
  const pool = createPool(db.url, schema)
  const t0 = performance.now()
  await generateInvites(pool, INVITES, INVITEES)
  // One of the synthetic invitees becomes a real account, so that its token verifies.
  await pool.query('UPDATE invite SET invitee = $1 WHERE invitee = $2', [me, 'did:plc:invitee7'])
  await pool.query('UPDATE acceptance SET author = $1 WHERE author = $2', [me, 'did:plc:invitee7'])
  // As a long-running database would be: vacuumed (visibility map set), statistics current.
  await pool.query('VACUUM ANALYZE')
  console.log(`generated ${INVITES} invites over ${INVITEES} invitees in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  const token = (await agent.com.atproto.server.getServiceAuth({ aud: SERVICE_DID, lxm: LXM, exp: Math.floor(Date.now() / 1000) + 3600 })).data.token
  const subject = (await pool.query<{ subject_uri: string }>('SELECT subject_uri FROM invite WHERE invitee = $1 LIMIT 1', [me])).rows[0]?.subject_uri as string

  // Chive's strategy, served the same way (Fastify, a pool of its own), without auth, in this process.
  const chive = Fastify()
  chive.get('/inbox', async () => chiveListInvites(pool, me, 'pending', 50))
  const chiveUrl = await chive.listen({ port: 0, host: '127.0.0.1' })
  // Connections warm (statements prepared, token verified) before anything is counted.
  const inbox = `${address}/xrpc/${LXM}?invitee=${encodeURIComponent(me)}&state=pending`
  const auth = { authorization: `Bearer ${token}` }
  await autocannon({ url: inbox, connections: CONNECTIONS, amount: CONNECTIONS * 20, headers: auth })
  rows.push(['inbox', 'listInvites invitee=me state=pending (auth, token reused)', await load(inbox, auth)])
  rows.push(['collaborators', 'listCollaborators subjectUri', await load(`${address}/xrpc/pub.chive.collaboration.listCollaborators?subjectUri=${encodeURIComponent(subject)}`)])
  rows.push(['chive', "Chive's strategy: LIMIT then filter, COUNT(*) per call (no auth)", await load(`${chiveUrl}/inbox`)])
  await chive.close()
  await pool.end()
})

console.log(`API under load: ${INVITES} invites, ${INVITEES} invitees, autocannon ${CONNECTIONS} connections x ${SECONDS} s, same 2-core machine`)
console.log('| query | req/s | p50 ms | p99 ms | failed |')
console.log('|---|---|---|---|---|')
for (const [, name, r] of rows) console.log(`| ${name} | ${Math.round(r.rps)} | ${r.p50} | ${r.p99} | ${r.failed} |`)
if (process.env.BENCH_JSON) writeFileSync(process.env.BENCH_JSON, JSON.stringify({ api: Object.fromEntries(rows.map(([k, , r]) => [k, r])), connections: CONNECTIONS }))
await net.close()
await db.stop()
process.exit(0)
