/**
 * Jetstream mode against firehose mode, on one workload (issue 13's two goals):
 *  1. bytes received per Chive event and per hour of stream: ≥ 100x less in Jetstream mode;
 *  2. written on the PDS -> listed by listInvites in Jetstream mode, proof included:
 *     p50 ≤ 50 ms, p99 ≤ 150 ms.
 *
 * One local network (dev-env PDS + PLC, here) takes real writes through the PDS's XRPC API: a
 * Bluesky-like mix (bluesky-records.ts) from accounts with deep repos, Chive records (subjects,
 * invites, acceptances) at a small share spread evenly through it, and handle updates (#identity,
 * which Jetstream sends to every subscriber whatever its filter). Two services, each as `npm start`
 * runs it in a process of its own with a Postgres schema of its own, read that workload at the same
 * time: one from the PDS's subscribeRepos (firehose mode), one through the Jetstream stand-in
 * (tests/support/jetstream.ts, v2), which translates the PDS's firehose into Jetstream JSON. Each
 * one's bytes come from its own counter (`bytesReceived`, message payloads, on /metrics); a
 * subscriber of the PDS's firehose here and the stand-in's `bytesSent` cross-check them.
 * Then, the firehose-mode service stopped, invites are written one at a time and timed until the
 * Jetstream-mode service lists them.
 *
 * Usage: npm run bench:jetstream [-- WRITES] (default 8000 record writes).
 * Environment: BENCH_CHIVE_SHARE (share of writes that are Chive records, default 0.005),
 * BENCH_IDENTITY_SHARE (handle updates per write, default 0.001), BENCH_CONCURRENCY (writers at
 * once, default 8), BENCH_REPO_RECORDS (records in each repo before the window, default 1000),
 * BENCH_INVITES (timed invites, default 200), BENCH_GAP_MS (pause between them, default 20),
 * BENCH_NETWORK_ACCOUNT_EVENTS_PER_S (the extrapolation's assumed #identity + #account rate of
 * the whole network, default 1), BENCH_JSON=file (the figures as JSON, also printed).
 */
import { writeFileSync } from 'node:fs'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { WebSocket } from 'ws'
import { normaliseRelayUrl } from '../src/config.ts'
import { createPool, type Pool } from '../src/db/pool.ts'
import { decodeFrame } from '../src/sources/firehose-frame.ts'
import { startLocalNetwork } from '../tests/support/network.ts'
import { spawnService } from '../tests/support/service-process.ts'
import { testPostgres } from '../tests/support/postgres.ts'
import { ACCEPTANCE, INVITE, LIST_INVITES, NODE, User, waitFor, type Ref } from '../tests/support/harness.ts'
import { startJetstreamStandIn, v2PayloadOf, V2_PATH, V2_SUBPROTOCOL, type RetainedEvent } from '../tests/support/jetstream.ts'
import { createAccount, fillRepo, type Account } from './support/corpus.ts'
import { blueskyRecord, rnd, sentence } from './support/bluesky-records.ts'
import { percentile } from './support/stats.ts'

const WRITES = Number(process.argv[2] ?? 8000)
const CHIVE_SHARE = Number(process.env.BENCH_CHIVE_SHARE ?? 0.005)
const IDENTITY_SHARE = Number(process.env.BENCH_IDENTITY_SHARE ?? 0.001)
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8)
const REPO_RECORDS = Number(process.env.BENCH_REPO_RECORDS ?? 1000)
const INVITES = Number(process.env.BENCH_INVITES ?? 200)
const GAP_MS = Number(process.env.BENCH_GAP_MS ?? 20)
const NETWORK_ACCOUNT_EVENTS_PER_S = Number(process.env.BENCH_NETWORK_ACCOUNT_EVENTS_PER_S ?? 1)
/** The Bluesky firehose's volume the issue quotes (jazco.dev, before the 2024 surge). */
const FIREHOSE_BYTES_PER_DAY = 24e9
const SERVICE_DID = 'did:web:bench.test'
const CHIVE_USERS = 4

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const n = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '-')
const mb = (bytes: number) => (Number.isFinite(bytes) ? `${(bytes / 1e6).toFixed(2)} MB` : '-')
const x1 = (r: number) => (Number.isFinite(r) ? `${r.toFixed(1)}x` : '-')

const db = await testPostgres()
// A relay pushes each event as it comes; the dev-env PDS polls for them. A 2 ms cap keeps that
// poll from being what the latency measures (as in freshness.ts).
const net = await startLocalNetwork({ sequencerIdleMs: 2 })
const t0 = performance.now()

// --- Accounts, and repos as deep as real ones (not in the window: nobody measures yet) ---
const accounts: Account[] = await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => createAccount(net.pdsUrl, `bsky${i}`)))
const posts: Ref[] = []
await Promise.all(accounts.map((u) => fillRepo(u, REPO_RECORDS, posts)))
// Chive users are Bluesky users too: their repos are as deep, which is what a proof's size follows.
const chive = accounts.slice(0, Math.min(CHIVE_USERS, accounts.length)).map((a) => new User(a.agent, a.did, ''))
// The invitee of the timed invites, alone in its inbox.
const timedInvitee = await createAccount(net.pdsUrl, 'timed')
const setupSeconds = (performance.now() - t0) / 1000

// --- The Jetstream stand-in and the two services ---
const js = await startJetstreamStandIn({ pdsUrl: net.pdsUrl, v2: true })
const stamp = Date.now()
const common = {
  DATABASE_URL: db.url,
  PLC_URL: net.plcUrl,
  ALLOW_PRIVATE_NETWORK: 'true',
  SERVICE_DID,
  LOG_LEVEL: 'info',
  // No full backfill of the local network: both read the same live window, nothing else.
  BACKFILL_ON_GAP: 'false',
  RATE_LIMIT_MAX: '0',
}
const schemas = { firehose: `bench_js_fh_${stamp}`, jetstream: `bench_js_js_${stamp}` }
// Live tails (no START_CURSOR): each starts where the stream is when it connects.
const firehoseSvc = spawnService({ ...common, DATABASE_SCHEMA: schemas.firehose, RELAY_URL: net.pdsUrl })
// RELAY_URL stays the PDS: repo resyncs and discovery still go to a relay (none is asked here).
const jetstreamSvc = spawnService({ ...common, DATABASE_SCHEMA: schemas.jetstream, RELAY_URL: net.pdsUrl, JETSTREAM_URL: js.url })
const addresses = { firehose: await firehoseSvc.address, jetstream: await jetstreamSvc.address }
type Mode = 'firehose' | 'jetstream'
const MODES: readonly Mode[] = ['firehose', 'jetstream']
const pools: Record<Mode, Pool> = { firehose: createPool(db.url, schemas.firehose, 2), jetstream: createPool(db.url, schemas.jetstream, 2) }

/** One sample of a Prometheus counter or gauge (unlabelled), NaN when absent. */
const metric = (text: string, name: string): number => Number(new RegExp(`^chive_indexer_${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN)
/** A labelled family, by its one label's value. */
const metricBy = (text: string, name: string): Record<string, number> =>
  Object.fromEntries([...text.matchAll(new RegExp(`^chive_indexer_${name}\\{\\w+="([^"]*)"\\} (\\S+)$`, 'gm'))].map((m) => [m[1] as string, Number(m[2])]))
const scrape = async (mode: Mode): Promise<string> => (await fetch(`${addresses[mode]}/metrics`)).text()

// Both subscriptions open before anything is written: a live tail misses what came before.
await waitFor(async () => (await Promise.all(MODES.map(async (m) => metric(await scrape(m), 'relay_connected') === 1))).every(Boolean), 'both services to connect', 30_000)
await waitFor(async () => js.connected() > 0, 'the stand-in to see its subscriber')

// The bench's own subscriber of the PDS's firehose: the firehose service's count cross-checked.
const watched = { bytes: 0, frames: 0, byKind: {} as Record<string, { frames: number; bytes: number }> }
const onFirehose = new Map<string, number>()
const watcher = new WebSocket(`${normaliseRelayUrl(net.pdsUrl)}/xrpc/com.atproto.sync.subscribeRepos`)
watcher.on('message', (data: Buffer) => {
  const at = performance.now()
  watched.bytes += data.length
  watched.frames++
  const evt = decodeFrame(new Uint8Array(data))
  const kind = evt.type === 'commit' ? (evt.ops.some((op) => op.path.startsWith('pub.chive.')) ? 'chive commit' : 'other commit') : `#${evt.type}`
  const k = (watched.byKind[kind] ??= { frames: 0, bytes: 0 })
  k.frames++
  k.bytes += data.length
  if (evt.type === 'commit') for (const op of evt.ops) onFirehose.set(`at://${evt.repo}/${op.path}`, at)
})
await new Promise((r) => watcher.once('open', r))
// The PDS registers a subscriber a moment after 'open' (see the stand-in): let it settle.
await sleep(200)
// /metrics is cached for a second: wait it out so the figures before are current.
await sleep(1100)
const before = Object.fromEntries(await Promise.all(MODES.map(async (m) => [m, metric(await scrape(m), 'source_bytes_received_total')] as const))) as Record<Mode, number>
const proofBytesBefore = metric(await scrape('jetstream'), 'jetstream_proof_bytes_total')
const standInBefore = js.stats.bytesSent

// --- Phase 1: the workload ---
type Action = 'bluesky' | 'chive' | 'identity'
/** Whether position i is one of `share`'s evenly spread positions. */
const spread = (i: number, share: number) => Math.floor((i + 1) * share) > Math.floor(i * share)
const schedule: Action[] = []
for (let i = 0; i < WRITES; i++) {
  schedule.push(spread(i, CHIVE_SHARE) ? 'chive' : 'bluesky')
  if (spread(i, IDENTITY_SHARE)) schedule.push('identity')
}
const written = { nodes: [] as Ref[], invites: [] as { by: User; to: User; ref: Ref; subject: Ref; accepted: boolean }[], acceptances: [] as Ref[] }
const nodesOf = new Map<User, Ref[]>(chive.map((c) => [c, []]))
let handleUpdates = 0

/** One Chive write, chosen as corpus.ts does: a quarter subjects, half invites, a quarter acceptances. */
const chiveWrite = async () => {
  const by = chive[rnd(chive.length)] as User
  const to = chive.filter((c) => c !== by)[rnd(chive.length - 1)] as User
  const mine = nodesOf.get(by) as Ref[]
  // Invites enter `written` once their createRecord is answered: one still being written is not offered.
  const open = written.invites.filter((i) => i.to === by && !i.accepted)
  const roll = Math.random()
  if (mine.length === 0 || roll < 0.25) {
    const ref = await by.node(sentence(10, 60))
    mine.push(ref)
    written.nodes.push(ref)
  } else if (roll < 0.75 || open.length === 0) {
    const subject = mine[rnd(mine.length)] as Ref
    const ref = await by.invite(subject, to, { message: sentence(10, 120) })
    written.invites.push({ by, to, ref, subject, accepted: false })
  } else {
    const inv = open[rnd(open.length)] as (typeof written.invites)[number]
    // Claimed before the await: no two writers accept the same invite.
    inv.accepted = true
    written.acceptances.push(await by.accept(inv.ref, inv.subject))
  }
}

let next = 0
const windowStartUs = Date.now() * 1000
const started = performance.now()
await Promise.all(
  accounts.map(async (u, lane) => {
    for (let i = next++; i < schedule.length; i = next++) {
      const action = schedule[i] as Action
      if (action === 'chive') await chiveWrite()
      else if (action === 'identity') {
        await u.agent.com.atproto.identity.updateHandle({ handle: `h${lane}x${rnd(1e9).toString(36)}.test` })
        handleUpdates++
      } else {
        const r = blueskyRecord(posts)
        await u.agent.com.atproto.repo.createRecord({ repo: u.did, collection: r.collection, record: { $type: r.collection, ...r.value } })
      }
    }
  }),
)
const workloadSeconds = (performance.now() - started) / 1000
const recordWrites = schedule.filter((a) => a !== 'identity').length
const chiveEvents = written.nodes.length + written.invites.length + written.acceptances.length

/** What a service holds of the Chive records written in the window. */
const held = async (pool: Pool) => {
  const count = async (sql: string, uris: string[]) => (await pool.query<{ n: number }>(sql, [uris])).rows[0]?.n ?? 0
  return {
    nodes: await count(`SELECT count(*)::int AS n FROM subject_record WHERE uri = ANY($1) AND NOT deleted`, written.nodes.map((r) => r.uri)),
    invites: await count(`SELECT count(*)::int AS n FROM invite WHERE uri = ANY($1) AND verification = 'verified'`, written.invites.map((i) => i.ref.uri)),
    acceptances: await count(`SELECT count(*)::int AS n FROM acceptance WHERE uri = ANY($1)`, written.acceptances.map((r) => r.uri)),
  }
}
const expected = { nodes: written.nodes.length, invites: written.invites.length, acceptances: written.acceptances.length }
const complete = (h: typeof expected) => h.nodes === expected.nodes && h.invites === expected.invites && h.acceptances === expected.acceptances
const drainStarted = performance.now()
const indexed = {} as Record<Mode, typeof expected>
await Promise.all(
  MODES.map(async (m) => {
    try {
      await waitFor(async () => complete((indexed[m] = await held(pools[m]))), `the ${m}-mode service to index every Chive record`, 60_000)
    } catch (err) {
      // Reported, not fatal: a service that misses records is a finding of the benchmark.
      console.error(`${(err as Error).message}: holds ${JSON.stringify(indexed[m])} of ${JSON.stringify(expected)}`)
    }
  }),
)
const drainSeconds = (performance.now() - drainStarted) / 1000
await sleep(1100)
const windowEndUs = Date.now() * 1000
const after = Object.fromEntries(await Promise.all(MODES.map(async (m) => [m, await scrape(m)] as const))) as Record<Mode, string>
const standInBytes = js.stats.bytesSent - standInBefore
const watchedBytes = watched.bytes
// The watcher goes on into phase 2 (it times the invites' commits): the window's kinds, now.
const firehoseKinds = structuredClone(watched.byKind)

const bytes = { firehose: metric(after.firehose, 'source_bytes_received_total') - before.firehose, jetstream: metric(after.jetstream, 'source_bytes_received_total') - before.jetstream }
const messages = { firehose: metric(after.firehose, 'frames_received_total'), jetstream: metric(after.jetstream, 'frames_received_total') }

// What the stand-in had to send in the window, by kind, as the service's v2 subscription asks it
// (pub.chive.* commits, every #identity / #account / #sync); and with no collection filter.
const v2Bytes = (r: RetainedEvent) => Buffer.byteLength(JSON.stringify({ $type: 'message', payload: v2PayloadOf(r) }))
const jetKinds: Record<string, { messages: number; bytes: number }> = {}
let unfilteredBytes = 0
for (const r of js.retained()) {
  if (r.event.time_us < windowStartUs || r.event.time_us > windowEndUs) continue
  const size = v2Bytes(r)
  unfilteredBytes += size
  const kind = r.event.kind === 'commit' ? (r.event.commit.collection.startsWith('pub.chive.') ? 'chive commit' : null) : `#${r.event.kind}`
  if (kind === null) continue
  const k = (jetKinds[kind] ??= { messages: 0, bytes: 0 })
  k.messages++
  k.bytes += size
}

// The Jetstream mode's other bytes: a getRecord proof from the host for every Chive commit (and
// account states), as the service counts them apart from the stream's.
const proofBytes = metric(after.jetstream, 'jetstream_proof_bytes_total') - proofBytesBefore
const proofUrl = (did: string, collection: string, rkey: string) => {
  const url = new URL('/xrpc/com.atproto.sync.getRecord', net.pdsUrl)
  url.search = new URLSearchParams({ did, collection, rkey }).toString()
  return url
}

const perEvent = { firehose: bytes.firehose / chiveEvents, jetstream: bytes.jetstream / chiveEvents }
const perHour = { firehose: (bytes.firehose / workloadSeconds) * 3600, jetstream: (bytes.jetstream / workloadSeconds) * 3600 }
const ratio = bytes.firehose / bytes.jetstream
const ratioWithProofs = bytes.firehose / (bytes.jetstream + proofBytes)

// At Bluesky's scale: firehose mode gets the whole firehose; Jetstream mode gets Chive's commits
// plus every #identity / #account of the network, at this run's message sizes.
const avg = (k: { messages: number; bytes: number } | undefined) => (k && k.messages > 0 ? k.bytes / k.messages : NaN)
const accountMsg = (() => {
  const a = jetKinds['#identity']
  const b = jetKinds['#account']
  const m = (a?.messages ?? 0) + (b?.messages ?? 0)
  return m > 0 ? ((a?.bytes ?? 0) + (b?.bytes ?? 0)) / m : avg(a)
})()
const chiveMsg = avg(jetKinds['chive commit'])
const proofPerEvent = proofBytes / chiveEvents
const accountBytesPerDay = NETWORK_ACCOUNT_EVENTS_PER_S * 86_400 * accountMsg
const atScale = [1_000, 10_000, 100_000, 1_000_000].map((chivePerDay) => {
  const stream = accountBytesPerDay + chivePerDay * chiveMsg
  return { chiveEventsPerDay: chivePerDay, jetstreamBytesPerDay: stream, ratio: FIREHOSE_BYTES_PER_DAY / stream, ratioWithProofs: FIREHOSE_BYTES_PER_DAY / (stream + chivePerDay * proofPerEvent) }
})

// --- Phase 2: written -> listed, Jetstream mode ---
firehoseSvc.child.kill('SIGTERM')
await firehoseSvc.exited
const inviter = chive[0] as User
const invitee = new User(timedInvitee.agent, timedInvitee.did, '')
const subject = await inviter.node('timed invites')
await waitFor(async () => ((await pools.jetstream.query('SELECT 1 FROM subject_record WHERE uri = $1', [subject.uri])).rowCount ?? 0) > 0, 'the subject to be indexed')
// When each invite reached the stand-in's subscribers (a subscriber of ours, invites only).
const onJetstream = new Map<string, number>()
const jetWatcher = new WebSocket(`${js.url}${V2_PATH}?collections=${INVITE}&kinds=commit`, [V2_SUBPROTOCOL])
jetWatcher.on('message', (data: Buffer) => {
  const at = performance.now()
  const m = JSON.parse(data.toString()) as { payload?: { did?: string; collection?: string; rkey?: string } }
  const p = m.payload
  if (p?.did && p.collection && p.rkey) onJetstream.set(`at://${p.did}/${p.collection}/${p.rkey}`, at)
})
await new Promise((r) => jetWatcher.once('open', r))

interface Sample {
  /** createRecord answered -> listed: the goal. */
  listed: number
  /** Before createRecord -> listed. */
  total: number
  write: number
  /** createRecord answered -> the commit on the PDS's firehose (negative: it came first). */
  toFirehose: number
  toJetstream: number
  fromJetstream: number
  /** A getRecord of the invite by the bench, once listed: what the service's proof fetch waits on. */
  proofFetch: number
}
const samples: Sample[] = []
const token = (await invitee.agent.com.atproto.server.getServiceAuth({ aud: SERVICE_DID, lxm: LIST_INVITES, exp: Math.floor(Date.now() / 1000) + 3600 })).data.token
const listUrl = `${addresses.jetstream}/xrpc/${LIST_INVITES}?invitee=${encodeURIComponent(invitee.did)}&state=pending&limit=1`
const top = async () => ((await (await fetch(listUrl, { headers: { authorization: `Bearer ${token}` } })).json()) as { invites?: { uri: string }[] }).invites?.[0]?.uri
const measure = async (): Promise<Sample> => {
  const start = performance.now()
  const invite = await inviter.invite(subject, invitee)
  const answered = performance.now()
  const deadline = answered + 30_000
  // Polled every millisecond: often enough to resolve the goal, without loading the service.
  while ((await top()) !== invite.uri) {
    if (performance.now() > deadline) throw new Error(`${invite.uri} not listed within 30 s`)
    await sleep(1)
  }
  const seen = performance.now()
  const fh = onFirehose.get(invite.uri) ?? NaN
  const jet = onJetstream.get(invite.uri) ?? NaN
  const [, , did, collection, rkey] = invite.uri.split('/')
  const fetchStarted = performance.now()
  await (await fetch(proofUrl(did as string, collection as string, rkey as string))).arrayBuffer()
  const proofFetch = performance.now() - fetchStarted
  return { listed: seen - answered, total: seen - start, write: answered - start, toFirehose: fh - answered, toJetstream: jet - fh, fromJetstream: seen - jet, proofFetch }
}
// The first one warms the path up (keys, connections) and is not counted.
await measure()
const proofsBefore = metricBy(await scrape('jetstream'), 'jetstream_proof_outcomes_total')
// This process hosts the PDS, the PLC and the stand-in: its stalls are theirs, not the service's.
const loopDelay = monitorEventLoopDelay({ resolution: 5 })
loopDelay.enable()
for (let i = 0; i < INVITES; i++) {
  samples.push(await measure())
  await sleep(GAP_MS)
}
loopDelay.disable()
const benchLoop = { p50: loopDelay.percentile(50) / 1e6, p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 }
await sleep(1100)
const finalJet = await scrape('jetstream')
const proofsAfter = metricBy(finalJet, 'jetstream_proof_outcomes_total')
const timedProofs = Object.fromEntries(Object.entries(proofsAfter).map(([k, v]) => [k, v - (proofsBefore[k] ?? 0)]).filter(([, v]) => (v as number) > 0))

const span = (k: keyof Sample) => {
  const xs = samples.map((s) => s[k]).filter(Number.isFinite)
  return { p50: percentile(xs, 50), p99: percentile(xs, 99), max: xs.length ? Math.max(...xs) : NaN }
}
const latency = {
  listed: span('listed'),
  total: span('total'),
  write: span('write'),
  toFirehose: span('toFirehose'),
  toJetstream: span('toJetstream'),
  fromJetstream: span('fromJetstream'),
  proofFetch: span('proofFetch'),
}
const over = (ms: number) => samples.filter((s) => s.listed > ms).length

// --- Report ---
const mix = `${n(recordWrites)} record writes (${n(expected.nodes)} subjects, ${n(expected.invites)} invites, ${n(expected.acceptances)} acceptances: ${((chiveEvents / recordWrites) * 100).toFixed(2)}% Chive) + ${handleUpdates} handle updates`
console.log(`\nsetup (accounts, ${n(REPO_RECORDS)} records in each of ${accounts.length} repos) ${setupSeconds.toFixed(1)} s; workload ${mix} by ${CONCURRENCY} writers in ${workloadSeconds.toFixed(1)} s (${n(recordWrites / workloadSeconds)} writes/s), indexed by both ${drainSeconds.toFixed(1)} s later`)
console.log(`\nbytes received, same workload, both services at once (message payloads, as each service counts them)`)
console.log('| | firehose mode | Jetstream mode | firehose / Jetstream |')
console.log('|---|---|---|---|')
console.log(`| bytes received (the service's bytesReceived) | ${n(bytes.firehose)} | ${n(bytes.jetstream)} | ${x1(ratio)} |`)
console.log(`| cross-check: a subscriber of the PDS here / the stand-in's bytesSent | ${n(watchedBytes)} | ${n(standInBytes)} | |`)
console.log(`| messages received | ${n(messages.firehose)} | ${n(messages.jetstream)} | |`)
console.log(`| Chive records indexed (subjects / invites verified / acceptances) of ${expected.nodes} / ${expected.invites} / ${expected.acceptances} | ${MODES.map((m) => (indexed[m] ? `${indexed[m].nodes} / ${indexed[m].invites} / ${indexed[m].acceptances}` : '-')).join(' | ')} | |`)
console.log(`| **bytes per Chive event** | ${n(perEvent.firehose)} | ${n(perEvent.jetstream)} | ${x1(perEvent.firehose / perEvent.jetstream)} |`)
console.log(`| bytes per hour of stream at this write rate (bytes/s × 3600) | ${mb(perHour.firehose)} | ${mb(perHour.jetstream)} | ${x1(perHour.firehose / perHour.jetstream)} |`)
console.log(`| Jetstream mode with its getRecord proofs (${n(proofPerEvent)} B per Chive event, counted by the service apart from the stream) | | ${n(bytes.jetstream + proofBytes)} | ${x1(ratioWithProofs)} |`)
const kinds = (o: Record<string, { frames?: number; messages?: number; bytes: number }>) =>
  Object.entries(o).map(([k, v]) => `${k} ${n(v.frames ?? v.messages ?? 0)} × ${n(v.bytes / (v.frames ?? v.messages ?? 1))} B`).join(', ')
console.log(`firehose frames in the window: ${kinds(firehoseKinds)}`)
console.log(`Jetstream messages the service's filter asks for: ${kinds(jetKinds)}; the same window with no collection filter: ${n(unfilteredBytes)} B`)
const rejected = metricBy(after.jetstream, 'events_rejected_total')
console.log(`Jetstream-mode service: proof outcomes ${JSON.stringify(metricBy(after.jetstream, 'jetstream_proof_outcomes_total'))}, rejected ${JSON.stringify(rejected)}, retries ${JSON.stringify(metricBy(after.jetstream, 'ingest_retries_total'))}; firehose-mode service rejected ${JSON.stringify(metricBy(after.firehose, 'events_rejected_total'))}`)
console.log(
  `at Bluesky's scale (assumed: the firehose ~24 GB/day; the network's #identity + #account at ${NETWORK_ACCOUNT_EVENTS_PER_S}/s, ${n(accountMsg)} B each, all sent to every Jetstream subscriber; Chive commits ${n(chiveMsg)} B each): ` +
    atScale.map((s) => `${n(s.chiveEventsPerDay)} Chive events/day -> ${mb(s.jetstreamBytesPerDay)}/day, ${x1(s.ratio)} (${x1(s.ratioWithProofs)} with proofs)`).join('; '),
)
const ms = (x: { p50: number; p99: number; max: number }) => `${x.p50.toFixed(1)} / ${x.p99.toFixed(1)} / ${x.max.toFixed(1)}`
console.log(`\ninvite written -> listed by listInvites, Jetstream mode (v2 stand-in, getRecord proof of every invite), ${INVITES} invites, ${GAP_MS} ms apart; ms, p50 / p99 / max`)
console.log('| createRecord answered -> listed | createRecord called -> listed | createRecord | answered -> on the PDS firehose | firehose -> on Jetstream | on Jetstream -> listed |')
console.log('|---|---|---|---|---|---|')
console.log(`| **${ms(latency.listed)}** | ${ms(latency.total)} | ${ms(latency.write)} | ${ms(latency.toFirehose)} | ${ms(latency.toJetstream)} | ${ms(latency.fromJetstream)} |`)
console.log(`answered -> listed over 50 ms: ${over(50)}, over 150 ms: ${over(150)} of ${samples.length}; proof outcomes of the timed invites: ${JSON.stringify(timedProofs)}`)
console.log(`for the tail: a getRecord of each invite by the bench once listed ${ms(latency.proofFetch)} ms; this process's event-loop delay (PDS, PLC, stand-in, poller) ${ms(benchLoop)} ms`)
const mark = (ok: boolean) => (ok ? 'met' : 'not met')
console.log(
  `goals: ≥ 100x fewer bytes per Chive event ${mark(perEvent.firehose / perEvent.jetstream >= 100)} (${x1(perEvent.firehose / perEvent.jetstream)}); ` +
    `written -> listed p50 ≤ 50 ms ${mark(latency.listed.p50 <= 50)} (${latency.listed.p50.toFixed(1)}), p99 ≤ 150 ms ${mark(latency.listed.p99 <= 150)} (${latency.listed.p99.toFixed(1)})`,
)

const figures = {
  jetstream: {
    workload: { recordWrites, chiveShare: chiveEvents / recordWrites, chive: expected, handleUpdates, concurrency: CONCURRENCY, repoRecords: REPO_RECORDS, seconds: workloadSeconds, writesPerSecond: recordWrites / workloadSeconds },
    indexed,
    bytes: { ...bytes, watchedFirehose: watchedBytes, standInSent: standInBytes, jetstreamUnfiltered: unfilteredBytes, proofs: proofBytes },
    messages,
    firehoseKinds,
    jetstreamKinds: jetKinds,
    perChiveEvent: perEvent,
    perHour,
    ratio,
    ratioWithProofs,
    atScale: { assumedFirehoseBytesPerDay: FIREHOSE_BYTES_PER_DAY, assumedAccountEventsPerSecond: NETWORK_ACCOUNT_EVENTS_PER_S, accountMessageBytes: accountMsg, chiveMessageBytes: chiveMsg, proofBytes: proofPerEvent, rows: atScale },
    latency: { invites: INVITES, gapMs: GAP_MS, ...latency, over50: over(50), over150: over(150), benchEventLoopDelay: benchLoop, proofOutcomes: timedProofs },
    rejected,
  },
}
console.log(`\nJSON: ${JSON.stringify(figures)}`)
if (process.env.BENCH_JSON) writeFileSync(process.env.BENCH_JSON, JSON.stringify(figures))

watcher.terminate()
jetWatcher.terminate()
jetstreamSvc.child.kill('SIGTERM')
await jetstreamSvc.exited
await Promise.all(MODES.map((m) => pools[m].end()))
await js.close()
await net.close()
await db.stop()
process.exit(0)
