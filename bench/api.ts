/**
 * API under load: 1,000,000 invites over 200,000 invitees in Postgres; an invitee's pending inbox
 * (authenticated, one token reused as the frontend does) and a subject's collaborators, loaded by
 * autocannon from the same machine; Chive's own listInvites strategy on the same data beside it.
 * Usage: npm run bench:api [-- INVITES INVITEES SECONDS]
 */
import autocannon from 'autocannon'
import Fastify from 'fastify'
import { AtpAgent } from '@atproto/api'
import { chiveListInvites, generateInvites } from '../src/db/bench-data.ts'
import { createLogger } from '../src/log.ts'
import { startService } from '../src/service.ts'
import { startLocalNetwork } from '../tests/support/network.ts'
import { benchConfig } from './support/config.ts'
import { testPostgres } from '../tests/support/postgres.ts'

const INVITES = Number(process.argv[2] ?? 1_000_000)
const INVITEES = Number(process.argv[3] ?? 200_000)
const SECONDS = Number(process.argv[4] ?? 10)
const SERVICE_DID = 'did:web:bench.test'
const LXM = 'pub.chive.collaboration.listInvites'

const db = await testPostgres()
const net = await startLocalNetwork()
const agent = new AtpAgent({ service: net.pdsUrl })
const handle = `me${Date.now() % 1e6}.test`
const me = (await agent.createAccount({ handle, email: `${handle}@example.com`, password: 'password' })).data.did
const config = benchConfig(net, db.url, SERVICE_DID)
const service = await startService(config, createLogger('silent'))
const t0 = performance.now()
await generateInvites(service.pool, INVITES, INVITEES)
// One of the synthetic invitees becomes a real account, so that its token verifies.
await service.pool.query('UPDATE invite SET invitee = $1 WHERE invitee = $2', [me, 'did:plc:invitee7'])
await service.pool.query('UPDATE acceptance SET author = $1 WHERE author = $2', [me, 'did:plc:invitee7'])
console.log(`generated ${INVITES} invites over ${INVITEES} invitees in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
const token = (await agent.com.atproto.server.getServiceAuth({ aud: SERVICE_DID, lxm: LXM, exp: Math.floor(Date.now() / 1000) + 3600 })).data.token
const subject = (await service.pool.query<{ subject_uri: string }>('SELECT subject_uri FROM invite WHERE invitee = $1 LIMIT 1', [me])).rows[0]?.subject_uri as string

// Chive's strategy, served the same way (Fastify, same pool), without auth.
const chive = Fastify()
chive.get('/inbox', async () => chiveListInvites(service.pool, me, 'pending', 50))
const chiveUrl = await chive.listen({ port: 0, host: '127.0.0.1' })

const load = async (url: string, headers: Record<string, string> = {}) => {
  const res = await autocannon({ url, connections: 32, duration: SECONDS, headers, timeout: 30 })
  return { rps: res.requests.average, p50: res.latency.p50, p99: res.latency.p99, failed: res.non2xx + res.errors + res.timeouts }
}
const rows: [string, Awaited<ReturnType<typeof load>>][] = []
rows.push(['listInvites invitee=me state=pending (auth, token reused)', await load(`${service.url}/xrpc/${LXM}?invitee=${encodeURIComponent(me)}&state=pending`, { authorization: `Bearer ${token}` })])
rows.push(['listCollaborators subjectUri', await load(`${service.url}/xrpc/pub.chive.collaboration.listCollaborators?subjectUri=${encodeURIComponent(subject)}`)])
rows.push(["Chive's strategy: LIMIT then filter, COUNT(*) per call (no auth)", await load(`${chiveUrl}/inbox`)])
console.log(`API under load: ${INVITES} invites, ${INVITEES} invitees, autocannon 32 connections x ${SECONDS} s, same 2-core machine`)
console.log('| query | req/s | p50 ms | p99 ms | failed |')
console.log('|---|---|---|---|---|')
for (const [name, r] of rows) console.log(`| ${name} | ${Math.round(r.rps)} | ${r.p50} | ${r.p99} | ${r.failed} |`)
await chive.close()
await service.stop()
await net.close()
await db.stop()
process.exit(0)
