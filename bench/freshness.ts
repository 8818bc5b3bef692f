/**
 * Invite written on a local PDS -> visible through listInvites, in two cases:
 *  - stream: the subject was created while the service ran (verified from the stream);
 *  - proof:  the subject predates the service's cursor (verified by a getRecord proof).
 * The service runs as `npm start` runs it, in a process of its own; the PDS and PLC run here.
 * Each latency is split at the moment the invite's commit reaches the PDS's firehose (seen by a
 * subscriber of this process), so the PDS's share and the indexer's share are both visible.
 * Usage: npm run bench:freshness [-- N]; BENCH_JSON=file also writes the figures as JSON.
 */
import { writeFileSync } from 'node:fs'
import { runService } from '../tests/support/service-process.ts'
import { percentile } from './support/stats.ts'
import { BENCH_SERVICE_DID, startWriteBench } from './support/write-bench.ts'

const N = Number(process.argv[2] ?? 50)
const SERVICE_DID = BENCH_SERVICE_DID
const LXM = 'pub.chive.collaboration.listInvites'

const { inviter, invitee, create, onFirehose, serviceEnv, close: closeBench } = await startWriteBench()

// Subjects for the proof case exist before the service starts reading.
const early: { uri: string; cid: string }[] = []
// One more than measured: the first warms the live tail up and is not measured.
for (let i = 0; i <= N; i++) early.push(await create('pub.chive.graph.node', { title: `early ${i}`, createdAt: new Date().toISOString() }))

interface Sample {
  total: number
  write: number
  toFirehose: number
  fromFirehose: number
}
const results: Record<'stream' | 'proof', Sample[]> = { stream: [], proof: [] }

const env = serviceEnv(`bench_fresh_${Date.now()}`)
await runService(env, async (address) => {
  const token = (await invitee.agent.com.atproto.server.getServiceAuth({ aud: SERVICE_DID, lxm: LXM, exp: Math.floor(Date.now() / 1000) + 3600 })).data.token
  const url = `${address}/xrpc/${LXM}?invitee=${encodeURIComponent(invitee.did)}&state=pending&limit=1`
  const listed = async () => {
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } })
    return ((await res.json()) as { invites?: { uri: string }[] }).invites?.[0]?.uri
  }
  const measure = async (subject: { uri: string; cid: string }): Promise<Sample> => {
    const started = performance.now()
    const invite = await create('pub.chive.collaboration.invite', { subject, invitee: invitee.did, createdAt: new Date().toISOString() })
    const written = performance.now()
    // Polled every millisecond: often enough to resolve the goal, without loading the service.
    while ((await listed()) !== invite.uri) await new Promise((r) => setTimeout(r, 1))
    const seen = performance.now()
    const emitted = onFirehose.get(invite.uri) ?? NaN
    return { total: seen - started, write: written - started, toFirehose: emitted - started, fromFirehose: seen - emitted }
  }
  // The live tail is up once a first record written now is listed.
  await measure(early[N] as (typeof early)[number])
  for (let i = 0; i < N; i++) {
    const fresh = await create('pub.chive.graph.node', { title: `fresh ${i}`, createdAt: new Date().toISOString() })
    results.stream.push(await measure(fresh))
    results.proof.push(await measure(early[i] as (typeof early)[number]))
  }
})

const summary = Object.fromEntries(
  Object.entries(results).map(([name, xs]) => {
    const pick = (k: keyof Sample) => ({ p50: percentile(xs.map((x) => x[k]), 50), p99: percentile(xs.map((x) => x[k]), 99) })
    return [name, { total: pick('total'), write: pick('write'), toFirehose: pick('toFirehose'), fromFirehose: pick('fromFirehose') }]
  }),
) as Record<'stream' | 'proof', Record<keyof Sample, { p50: number; p99: number }>>
const ms = (x: { p50: number; p99: number }) => `${x.p50.toFixed(1)} / ${x.p99.toFixed(1)}`
console.log(`invite written -> listed by listInvites (${N} invites each; service in its own process; ms, p50 / p99)`)
console.log('| subject known from | written -> listed | createRecord answered | written -> on the firehose | on the firehose -> listed |')
console.log('|---|---|---|---|---|')
for (const [name, s] of Object.entries(summary)) {
  console.log(`| ${name === 'stream' ? 'the stream' : 'a getRecord proof'} | ${ms(s.total)} | ${ms(s.write)} | ${ms(s.toFirehose)} | ${ms(s.fromFirehose)} |`)
}
if (process.env.BENCH_JSON) writeFileSync(process.env.BENCH_JSON, JSON.stringify({ freshness: summary }))
await closeBench()
process.exit(0)
