/**
 * Push (pub.chive.collabIndexer.subscribeInvites), with the service as `npm start` runs it, in a
 * process of its own; the PDS, PLC and every subscriber run here.
 *  1. latency: an invite written on the PDS -> its #change received by the invitee's
 *     subscription, split where the commit reaches the PDS's firehose;
 *  2. SUBSCRIBERS concurrent subscriptions (of DIDS accounts): the service's memory per
 *     subscriber; fan-out: a commit of one change for each of those accounts -> each subscriber
 *     has its frame; the latency of (1) again while they listen;
 *  3. ingest while they listen: INGEST invites written on the PDS -> all listed, with the
 *     subscribers connected and without.
 * Usage: npm run bench:push [-- N SUBSCRIBERS DIDS INGEST]; BENCH_JSON=file writes the figures.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { Frame } from '@atproto/xrpc-server'
import { WebSocket } from 'ws'
import { createPool } from '../src/db/pool.ts'
import { generateProvenInvites } from '../src/db/bench-data.ts'
import { spawnService } from '../tests/support/service-process.ts'
import { createAccount, type Account } from './support/corpus.ts'
import { percentile } from './support/stats.ts'
import { BENCH_SERVICE_DID, startWriteBench } from './support/write-bench.ts'

const N = Number(process.argv[2] ?? 50)
const SUBSCRIBERS = Number(process.argv[3] ?? 10_000)
const DIDS = Number(process.argv[4] ?? 100)
const INGEST = Number(process.argv[5] ?? 500)
const ROUNDS = 5
const SERVICE_DID = BENCH_SERVICE_DID
const NSID = 'pub.chive.collabIndexer.subscribeInvites'
const LIST = 'pub.chive.collaboration.listInvites'

const { db, net, inviter, invitee, create, onFirehose, serviceEnv, close: closeBench } = await startWriteBench()
const token = async (a: Account, lxm = NSID) =>
  (await a.agent.com.atproto.server.getServiceAuth({ aud: SERVICE_DID, lxm, exp: Math.floor(Date.now() / 1000) + 3600 })).data.token

const schema = `bench_push_${Date.now()}`
const svc = spawnService({
  ...serviceEnv(schema),
  SUBSCRIBE_MAX_CONNECTIONS: String(SUBSCRIBERS + 100),
  // Every subscriber comes from this process, several per account.
  SUBSCRIBE_MAX_PER_ADDRESS: String(SUBSCRIBERS + 100),
  SUBSCRIBE_MAX_PER_DID: String(Math.ceil(SUBSCRIBERS / DIDS) + 10),
})
const address = await svc.address
const wsUrl = `${address.replace(/^http/, 'ws')}/xrpc/${NSID}`
const rssMb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${svc.child.pid}/status`, 'utf8'))?.[1]) / 1024
const pool = createPool(db.url, schema)

// The invitee's subscription: each #change's invite URI, when it arrived.
const pushedAt = new Map<string, number>()
const sub = new WebSocket(wsUrl, { headers: { authorization: `Bearer ${await token(invitee)}` } })
sub.on('message', (data: Buffer) => {
  const at = performance.now()
  const frame = Frame.fromBytes(new Uint8Array(data))
  const body = frame.body as { kind?: string; invite?: { uri: string } }
  if (frame.isMessage() && body.kind === 'created' && body.invite) pushedAt.set(body.invite.uri, at)
})
await new Promise((r) => sub.once('open', r))

interface Sample {
  total: number
  toFirehose: number
  fromFirehose: number
}
const latency = async (count: number): Promise<Sample[]> => {
  const out: Sample[] = []
  for (let i = 0; i <= count; i++) {
    const subject = await create('pub.chive.graph.node', { title: `n${i}`, createdAt: new Date().toISOString() })
    const started = performance.now()
    const invite = await create('pub.chive.collaboration.invite', { subject: { uri: subject.uri, cid: subject.cid }, invitee: invitee.did, createdAt: new Date().toISOString() })
    while (!pushedAt.has(invite.uri)) await new Promise((r) => setTimeout(r, 1))
    const pushed = pushedAt.get(invite.uri) as number
    const emitted = onFirehose.get(invite.uri) ?? NaN
    // The first warms the path up.
    if (i > 0) out.push({ total: pushed - started, toFirehose: emitted - started, fromFirehose: pushed - emitted })
  }
  return out
}
const pct = (xs: number[]) => ({ p50: percentile(xs, 50), p99: percentile(xs, 99) })
const summarise = (xs: Sample[]) => ({ total: pct(xs.map((x) => x.total)), toFirehose: pct(xs.map((x) => x.toFirehose)), fromFirehose: pct(xs.map((x) => x.fromFirehose)) })

const idle = summarise(await latency(N))
console.log('latency (idle):', JSON.stringify(idle))

const accounts: Account[] = []
for (let i = 0; i < DIDS; i += 10) accounts.push(...(await Promise.all(Array.from({ length: Math.min(10, DIDS - i) }, (_, j) => createAccount(net.pdsUrl, `s${i + j}`)))))
// Ingest without subscribers first, then (below) while they listen. The invites go to accounts the
// subscribers follow, so every one of them is also fanned out (to SUBSCRIBERS / DIDS sockets).
const listToken = await token(inviter, LIST)
const ingest = async (tag: string): Promise<number> => {
  const subject = await create('pub.chive.graph.node', { title: tag, createdAt: new Date().toISOString() })
  const listed = async () => {
    const res = await fetch(`${address}/xrpc/${LIST}?inviter=${encodeURIComponent(inviter.did)}&subjectUri=${encodeURIComponent(subject.uri)}&limit=1`, { headers: { authorization: `Bearer ${listToken}` } })
    return ((await res.json()) as { total?: number }).total ?? 0
  }
  const started = performance.now()
  for (let i = 0; i < INGEST; i += 100) {
    const writes = Array.from({ length: Math.min(100, INGEST - i) }, (_, j) => ({
      $type: 'com.atproto.repo.applyWrites#create' as const,
      collection: 'pub.chive.collaboration.invite',
      value: { $type: 'pub.chive.collaboration.invite', subject: { uri: subject.uri, cid: subject.cid }, invitee: (accounts[(i + j) % DIDS] as Account).did, createdAt: new Date().toISOString() },
    }))
    await inviter.agent.com.atproto.repo.applyWrites({ repo: inviter.did, writes })
  }
  while ((await listed()) < INGEST) await new Promise((r) => setTimeout(r, 5))
  return INGEST / ((performance.now() - started) / 1000)
}
// Twice without: the first warms the path up.
await ingest('warm-up')
const ingestAlone = await ingest('without')

// Many subscribers.
const tokens = await Promise.all(accounts.map((a) => token(a)))
await new Promise((r) => setTimeout(r, 2000))
const rssBefore = rssMb()
const clients: { ws: WebSocket; got: number }[] = []
const connectStarted = performance.now()
for (let i = 0; i < SUBSCRIBERS; i += 200) {
  await Promise.all(
    Array.from({ length: Math.min(200, SUBSCRIBERS - i) }, async (_, j) => {
      const ws = new WebSocket(wsUrl, { headers: { authorization: `Bearer ${tokens[(i + j) % DIDS]}` }, perMessageDeflate: false })
      const c = { ws, got: 0 }
      // Only the arrival time is taken here: decoding 10,000 frames in this process would be measured too.
      ws.on('message', () => {
        if (c.got === 0) c.got = performance.now()
      })
      ws.on('error', (err) => console.error('subscriber error', err.message))
      await new Promise((r, rej) => {
        ws.once('open', r)
        ws.once('error', rej)
      })
      clients.push(c)
    }),
  )
}
const connectSeconds = (performance.now() - connectStarted) / 1000
await new Promise((r) => setTimeout(r, 3000))
const rssAfter = rssMb()
const perSubscriberKb = ((rssAfter - rssBefore) * 1024) / SUBSCRIBERS
console.log(`${SUBSCRIBERS} subscribers connected in ${connectSeconds.toFixed(1)} s; service RSS ${rssBefore.toFixed(0)} -> ${rssAfter.toFixed(0)} MB (${perSubscriberKb.toFixed(1)} KB each)`)

const fanout: { p50: number; p99: number; max: number }[] = []
for (let round = 0; round < ROUNDS; round++) {
  for (const c of clients) c.got = 0
  const started = performance.now()
  await generateProvenInvites(pool, { inviter: inviter.did, invitees: accounts.map((a) => a.did), perInvitee: 1, tag: `round${round}` })
  while (clients.some((c) => c.got === 0)) await new Promise((r) => setTimeout(r, 2))
  const xs = clients.map((c) => c.got - started)
  fanout.push({ p50: percentile(xs, 50), p99: percentile(xs, 99), max: Math.max(...xs) })
  await new Promise((r) => setTimeout(r, 500))
}
console.log('fan-out (commit -> frame at each subscriber), per round:', JSON.stringify(fanout))
const loaded = summarise(await latency(Math.min(N, 30)))
console.log('latency (while they listen):', JSON.stringify(loaded))

const ingestListening = await ingest('with')
for (const c of clients) c.ws.terminate()
console.log(`ingest of ${INGEST} invites written on the PDS -> listed: ${ingestListening.toFixed(0)}/s with ${SUBSCRIBERS} subscribers, ${ingestAlone.toFixed(0)}/s without`)

const ms = (x: { p50: number; p99: number }) => `${x.p50.toFixed(1)} / ${x.p99.toFixed(1)}`
const med = (k: 'p50' | 'p99' | 'max') => percentile(fanout.map((f) => f[k]), 50)
console.log(`\npush (${os.cpus().length} cores, ${os.cpus()[0]?.model ?? '?'}, Node ${process.version}; service in its own process, PDS, PLC and subscribers in this one)`)
console.log('| measure | goal | figure |')
console.log('|---|---|---|')
console.log(`| written on the PDS -> pushed to the invitee, p50 / p99 ms (${N}) | ≤ 30 / ≤ 100 | ${ms(idle.total)} |`)
console.log(`| of which PDS -> firehose / firehose -> pushed, p50 ms | | ${idle.toFirehose.p50.toFixed(1)} / ${idle.fromFirehose.p50.toFixed(1)} |`)
console.log(`| the same with ${SUBSCRIBERS} subscribers listening, p50 / p99 ms | | ${ms(loaded.total)} |`)
console.log(`| service memory per subscriber (RSS, ${SUBSCRIBERS} of ${DIDS} accounts), KB | | ${perSubscriberKb.toFixed(1)} |`)
console.log(`| fan-out: ${DIDS} changes in one commit -> all ${SUBSCRIBERS} subscribers, p50 / p99 / last ms (median of ${ROUNDS}) | | ${med('p50').toFixed(0)} / ${med('p99').toFixed(0)} / ${med('max').toFixed(0)} |`)
console.log(`| ingest, ${INGEST} invites written -> listed, with / without the subscribers, per s | unchanged | ${ingestListening.toFixed(0)} / ${ingestAlone.toFixed(0)} |`)
if (process.env.BENCH_JSON) {
  writeFileSync(process.env.BENCH_JSON, JSON.stringify({ push: { idle, loaded, perSubscriberKb, fanout, ingestListening, ingestAlone, subscribers: SUBSCRIBERS, dids: DIDS } }))
}
sub.terminate()
svc.child.kill('SIGTERM')
await svc.exited
await pool.end()
await closeBench()
process.exit(0)
