/**
 * Ingest throughput: a synthetic relay stream (real signed commits from a local PDS, re-sequenced;
 * ~0.25% touch our collections) served over a local WebSocket, consumed
 *   - by this service's indexer (verification on, effects and cursor committed to Postgres),
 *     from the first frame to the committed cursor reaching the last seq;
 *   - by @atproto/sync's Firehose (filterCollections, verification on: its default), until it
 *     hands over the last frame's invite.
 * Usage: npm run bench:ingest [-- FRAMES]
 */
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import inspector from 'node:inspector/promises'
import { AtpAgent } from '@atproto/api'
import { Firehose } from '@atproto/sync'
import { IdResolver, MemoryCache } from '@atproto/identity'
import { normaliseRelayUrl } from '../src/config.ts'
import { migrate } from '../src/db/migrate.ts'
import { createPool } from '../src/db/pool.ts'
import { readCursor } from '../src/db/cursor.ts'
import { createIdResolver } from '../src/identity.ts'
import { loadLexicons } from '../src/lexicons.ts'
import { createLogger } from '../src/log.ts'
import { Indexer } from '../src/ingest/indexer.ts'
import { decodeFrame, type CommitEvent } from '../src/ingest/frame.ts'
import { verifyCommitOps } from '../src/ingest/commit.ts'
import { startLocalNetwork } from '../tests/support/network.ts'
import { testPostgres } from '../tests/support/postgres.ts'
import { captureFrames } from '../tests/support/replay-relay.ts'
import { startArgs } from '../tests/support/start-command.ts'
import { spawnRelay, synthesize } from './support/stream.ts'

const FRAMES = Number(process.argv[2] ?? 100_000)
const log = createLogger('silent')
const db = await testPostgres()
const net = await startLocalNetwork()

const account = async (name: string) => {
  const agent = new AtpAgent({ service: net.pdsUrl })
  const handle = `${name}${Math.floor(Math.random() * 1e6)}.test`
  const did = (await agent.createAccount({ handle, email: `${handle}@example.com`, password: 'password' })).data.did
  return { agent, did }
}
const users = await Promise.all(Array.from({ length: 12 }, (_, i) => account(`in${i}`)))
const text = 'lorem ipsum dolor sit amet '.repeat(11)
// The inviter's repo is tracked (its every commit is checked against the chain): like a Chive
// user on the real network, it writes a small share of the traffic.
for (let i = 0; i < 400; i++) {
  const u = users[1 + (i % (users.length - 1))] as (typeof users)[number]
  await u.agent.com.atproto.repo.createRecord({ repo: u.did, collection: 'app.bsky.feed.post', record: { $type: 'app.bsky.feed.post', text, createdAt: new Date().toISOString() } })
}
const inviter = users[0] as (typeof users)[number]
const invitee = users[1] as (typeof users)[number]
const node = await inviter.agent.com.atproto.repo.createRecord({ repo: inviter.did, collection: 'pub.chive.graph.node', record: { $type: 'pub.chive.graph.node', title: 't', createdAt: new Date().toISOString() } })
const invite = await inviter.agent.com.atproto.repo.createRecord({
  repo: inviter.did,
  collection: 'pub.chive.collaboration.invite',
  record: { $type: 'pub.chive.collaboration.invite', subject: { uri: node.data.uri, cid: node.data.cid }, invitee: invitee.did, createdAt: new Date().toISOString() },
})
const invitePath = invite.data.uri.split('/').slice(3).join('/')
const captured = await captureFrames(normaliseRelayUrl(net.pdsUrl), 0, (f) => {
  const e = decodeFrame(f)
  return e.type === 'commit' && e.ops.some((op) => op.path === invitePath)
})
const commits = captured.filter((f) => decodeFrame(f).type === 'commit')
const last = commits[commits.length - 1] as Uint8Array
const frames = synthesize(commits, last, FRAMES)
const lastSeq = 1_000_000 + FRAMES - 1
const avgBytes = frames.reduce((n, f) => n + f.length, 0) / frames.length
const relevant = commits.filter((f) => {
  const e = decodeFrame(f)
  return e.type === 'commit' && e.ops.some((op) => op.path.startsWith('pub.chive.collaboration.'))
}).length

const ours = async () => {
  const server = await spawnRelay(frames)
  const schema = `bench_ingest_${Date.now()}`
  await migrate(db.url, schema, log)
  const pool = createPool(db.url, schema)
  const indexer = new Indexer({
    pool,
    relayUrl: server.url,
    startCursor: 0,
    lexicons: loadLexicons(),
    idResolver: createIdResolver({ plcUrl: net.plcUrl, allowPrivateNetwork: true }),
    log,
    backfillOnGap: false,
  })
  const started = performance.now()
  let peakRss = 0
  await indexer.start()
  for (;;) {
    peakRss = Math.max(peakRss, process.memoryUsage.rss())
    if ((await readCursor(pool, server.url)) === lastSeq) break
    await new Promise((r) => setTimeout(r, 5))
  }
  const seconds = (performance.now() - started) / 1000
  await indexer.stop()
  await pool.end()
  await server.close()
  return { seconds, peakRss }
}

/** The service as `npm start` runs it, in a process of its own: throughput and its peak RSS. */
const service = async () => {
  const server = await spawnRelay(frames)
  const child = spawn(process.execPath, startArgs(), {
    env: {
      ...process.env,
      DATABASE_URL: db.url,
      DATABASE_SCHEMA: `bench_ingest_svc_${Date.now()}`,
      RELAY_URL: server.url,
      PLC_URL: net.plcUrl,
      START_CURSOR: '0',
      BACKFILL_ON_GAP: 'false',
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d.toString()))
  let address: string | undefined
  while (!(address = /"address":"(http:\/\/[^"]+)"/.exec(output)?.[1])) await new Promise((r) => setTimeout(r, 20))
  output = ''
  const rss = () => {
    const status = readFileSync(`/proc/${child.pid}/status`, 'utf8')
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024
  }
  const started = performance.now()
  let peakRss = 0
  const samples: number[] = []
  for (;;) {
    const now = rss()
    samples.push(Math.round(now / 1e6))
    peakRss = Math.max(peakRss, now)
    const health = (await (await fetch(`${address}/xrpc/_health`)).json()) as { cursor: number | null }
    if (health.cursor === lastSeq) break
    await new Promise((r) => setTimeout(r, 20))
  }
  const seconds = (performance.now() - started) / 1000
  if (process.env.BENCH_RSS_SERIES) console.log('rss MB every ~20 ms:', samples.join(' '))
  child.kill('SIGTERM')
  await new Promise((r) => child.once('exit', r))
  await server.close()
  return { seconds, peakRss }
}

const baseline = async () => {
  const server = await spawnRelay(frames)
  const idResolver = new IdResolver({ plcUrl: net.plcUrl, didCache: new MemoryCache(), fetch: globalThis.fetch })
  let resolve: () => void = () => {}
  const done = new Promise<void>((r) => (resolve = r))
  const firehose = new Firehose({
    service: server.url,
    idResolver,
    filterCollections: ['pub.chive.collaboration.invite', 'pub.chive.collaboration.inviteAcceptance'],
    getCursor: async () => 0,
    handleEvent: async (evt) => {
      if ('seq' in evt && evt.seq === lastSeq) resolve()
    },
    onError: () => {},
  })
  const started = performance.now()
  void firehose.start()
  await done
  const seconds = (performance.now() - started) / 1000
  await firehose.destroy()
  await server.close()
  return { seconds }
}

{
  const t = performance.now()
  for (const f of frames) decodeFrame(f)
  console.log(`decodeFrame alone: ${(((performance.now() - t) * 1000) / frames.length).toFixed(1)} µs/frame`)
}
// Verification of one relevant commit: CAR block hashes, signature, MST proof of each op.
const verifyMs = await (async () => {
  const resolver = createIdResolver({ plcUrl: net.plcUrl, allowPrivateNetwork: true })
  const keys = { signingKey: (did: string, refresh: boolean) => resolver.did.resolveAtprotoKey(did, refresh) }
  const evt = decodeFrame(last) as CommitEvent
  const ops = evt.ops.filter((op) => op.path.startsWith('pub.chive.'))
  await verifyCommitOps(evt, ops, keys)
  const rounds = 300
  const t = performance.now()
  for (let i = 0; i < rounds; i++) {
    const res = await verifyCommitOps(evt, ops, keys)
    if (res.verified.length !== ops.length) throw new Error('verification failed')
  }
  return (performance.now() - t) / rounds
})()

// BENCH_PROFILE=file.cpuprofile records a CPU profile of this indexer's run alone.
const profile = process.env.BENCH_PROFILE
const session = profile ? new inspector.Session() : null
if (session) {
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.start')
}
// BENCH_ONLY=ours,service,baseline runs some of the consumers (BENCH_ONLY=ours to profile this indexer alone).
const only = new Set((process.env.BENCH_ONLY ?? 'ours,service,baseline').split(','))
const a = only.has('ours') ? await ours() : { seconds: NaN, peakRss: NaN }
const svc = only.has('service') ? await service() : { seconds: NaN, peakRss: NaN }
if (session && profile) {
  const { profile: data } = (await session.post('Profiler.stop')) as { profile: unknown }
  writeFileSync(profile, JSON.stringify(data))
}
const b = only.has('baseline') ? await baseline() : { seconds: NaN }
const ratio = b.seconds / a.seconds
console.log(`ingest of ${FRAMES} frames (avg ${Math.round(avgBytes)} B, ${((relevant / commits.length) * 100).toFixed(2)}% relevant), over a local WebSocket from a relay process of its own`)
console.log('| consumer | seconds | frames/s |')
console.log('|---|---|---|')
console.log(`| this indexer (verified, committed to Postgres) | ${a.seconds.toFixed(2)} | ${Math.round(FRAMES / a.seconds)} |`)
console.log(`| the service as \`npm start\` runs it (own process; includes start-up) | ${svc.seconds.toFixed(2)} | ${Math.round(FRAMES / svc.seconds)} |`)
console.log(`| @atproto/sync Firehose (filterCollections, verification on) | ${b.seconds.toFixed(2)} | ${Math.round(FRAMES / b.seconds)} |`)
console.log(`relevant-commit verification: ${verifyMs.toFixed(2)} ms per commit (signature, CAR hashes, MST proof)`)
console.log(`ratio: ${ratio.toFixed(2)}x; peak RSS of the service process while it ingested: ${Math.round(svc.peakRss / 1e6)} MB`)
await net.close()
await db.stop()
process.exit(0)
