/**
 * Invite written on a local PDS -> visible through listInvites, in two cases:
 *  - stream: the subject was created while the service ran (verified from the stream);
 *  - proof:  the subject predates the service's cursor (verified by a getRecord proof).
 * Prints p50 / p99 / max in milliseconds. Usage: npm run bench:freshness [-- N]
 */
import { AtpAgent } from '@atproto/api'
import { createLogger } from '../src/log.ts'
import { startService } from '../src/service.ts'
import { startLocalNetwork } from '../tests/support/network.ts'
import { benchConfig } from './support/config.ts'
import { testPostgres } from '../tests/support/postgres.ts'

const N = Number(process.argv[2] ?? 50)
const SERVICE_DID = 'did:web:bench.test'
const LXM = 'pub.chive.collaboration.listInvites'

const percentile = (xs: number[], p: number) => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN
}

const db = await testPostgres()
const net = await startLocalNetwork()
const account = async (name: string) => {
  const agent = new AtpAgent({ service: net.pdsUrl })
  const handle = `${name}${Math.floor(Math.random() * 1e6)}.test`
  const res = await agent.createAccount({ handle, email: `${handle}@example.com`, password: 'password' })
  return { agent, did: res.data.did }
}
const inviter = await account('inv')
const invitee = await account('ee')
const create = async (collection: string, record: Record<string, unknown>) =>
  (await inviter.agent.com.atproto.repo.createRecord({ repo: inviter.did, collection, record: { $type: collection, ...record } })).data

// Subjects for the proof case exist before the service starts reading.
const early = []
for (let i = 0; i < N; i++) early.push(await create('pub.chive.graph.node', { title: `early ${i}`, createdAt: new Date().toISOString() }))
const config = benchConfig(net, db.url, SERVICE_DID)
const service = await startService(config, createLogger('silent'))
const token = (await invitee.agent.com.atproto.server.getServiceAuth({ aud: SERVICE_DID, lxm: LXM, exp: Math.floor(Date.now() / 1000) + 3600 })).data.token
const url = `${service.url}/xrpc/${LXM}?invitee=${encodeURIComponent(invitee.did)}&state=pending&limit=1`

const writes: number[] = []
const measure = async (subject: { uri: string; cid: string }): Promise<number> => {
  const started = performance.now()
  const invite = await create('pub.chive.collaboration.invite', { subject, invitee: invitee.did, createdAt: new Date().toISOString() })
  writes.push(performance.now() - started)
  for (;;) {
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } })
    const body = (await res.json()) as { invites: { uri: string }[] }
    if (body.invites[0]?.uri === invite.uri) return performance.now() - started
    await new Promise((r) => setTimeout(r, 1))
  }
}

const results: Record<string, number[]> = { stream: [], proof: [] }
// Let the live tail settle before measuring.
await new Promise((r) => setTimeout(r, 500))
for (let i = 0; i < N; i++) {
  const fresh = await create('pub.chive.graph.node', { title: `fresh ${i}`, createdAt: new Date().toISOString() })
  results.stream?.push(await measure(fresh))
  results.proof?.push(await measure(early[i] as { uri: string; cid: string }))
}
console.log(`invite written -> listed by listInvites (${N} invites each, local PDS, ms)`)
console.log('| subject known from | p50 | p99 | max |')
console.log('|---|---|---|---|')
for (const [name, xs] of Object.entries(results)) {
  console.log(`| ${name === 'stream' ? 'the stream' : 'a getRecord proof'} | ${percentile(xs, 50).toFixed(1)} | ${percentile(xs, 99).toFixed(1)} | ${Math.max(...xs).toFixed(1)} |`)
}
console.log(`createRecord itself (the PDS answering the write): p50 ${percentile(writes, 50).toFixed(1)} ms, p99 ${percentile(writes, 99).toFixed(1)} ms`)
await service.stop()
await net.close()
await db.stop()
process.exit(0)
