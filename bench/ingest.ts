/**
 * Ingest throughput: a synthetic relay stream (`support/corpus.ts`: real signed commits from a
 * local PDS, a Bluesky-like mix, 0.2% Chive commits) served over a local WebSocket, consumed
 *   - by this service's indexer (verification on, effects and cursor committed to Postgres),
 *     from the first frame to the committed cursor reaching the last seq;
 *   - by @atproto/sync's Firehose (filterCollections, verification on: its default), until it
 *     hands over the last frame's invite.
 * Usage: npm run bench:ingest [-- FRAMES]. Environment: BENCH_CHIVE_SHARE (default 0.002),
 * BENCH_BASELINE_FRAMES (default 20000: the default @atproto/sync consumer's share of the stream),
 * BENCH_ONLY=ceiling,ours,service,baseline (a subset), BENCH_PROFILE=file.cpuprofile (this indexer's
 * run), BENCH_RSS_SERIES=1 (the service's RSS over time), BENCH_JSON=file (figures as JSON).
 */
import { WebSocket } from 'ws'
import { readFileSync, writeFileSync } from 'node:fs'
import inspector from 'node:inspector/promises'
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
import { spawnService } from '../tests/support/service-process.ts'
import { buildCorpus } from './support/corpus.ts'
import { spawnRelay } from './support/stream.ts'

const FRAMES = Number(process.argv[2] ?? 200_000)
const BASELINE_FRAMES = Number(process.env.BENCH_BASELINE_FRAMES ?? 20_000)
const log = createLogger('silent')
const db = await testPostgres()
const net = await startLocalNetwork()

const t0 = performance.now()
const corpus = await buildCorpus(net.pdsUrl, { frames: FRAMES, chiveShare: Number(process.env.BENCH_CHIVE_SHARE ?? 0.002) })
const { frames, lastSeq, avgBytes } = corpus
const last = frames[frames.length - 1] as Uint8Array
console.log(`corpus built in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${FRAMES} frames, avg ${Math.round(avgBytes)} B`)
console.log(`mix: ${Object.entries(corpus.mix).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${((n / FRAMES) * 100).toFixed(1)}%`).join(', ')}`)

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
  // From the first frame on the wire: the consumer's own start-up is not counted.
  const started = server.firstConnection()
  await indexer.start()
  while ((await readCursor(pool, server.url)) !== lastSeq) await new Promise((r) => setTimeout(r, 5))
  const seconds = (performance.now() - (await started)) / 1000
  await indexer.stop()
  await pool.end()
  await server.close()
  return { seconds }
}

/** The service as `npm start` runs it, in a process of its own: throughput and its peak RSS. */
const service = async () => {
  const server = await spawnRelay(frames)
  const schema = `bench_ingest_svc_${Date.now()}`
  const svc = spawnService({
    DATABASE_URL: db.url,
    DATABASE_SCHEMA: schema,
    RELAY_URL: server.url,
    PLC_URL: net.plcUrl,
    START_CURSOR: '0',
    BACKFILL_ON_GAP: 'false',
  })
  const { child } = svc
  await svc.address
  const pool = createPool(db.url, schema)
  const rss = () => {
    const status = readFileSync(`/proc/${child.pid}/status`, 'utf8')
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024
  }
  // From the first frame on the wire: the consumer's own start-up is not counted.
  const started = server.firstConnection()
  let peakRss = 0
  const samples: number[] = []
  for (;;) {
    const now = rss()
    samples.push(Math.round(now / 1e6))
    peakRss = Math.max(peakRss, now)
    // The committed cursor, read straight from the database: polling /xrpc/_health as often
    // would take the service's own time.
    if ((await readCursor(pool, server.url)) === lastSeq) break
    await new Promise((r) => setTimeout(r, 5))
  }
  const seconds = (performance.now() - (await started)) / 1000
  if (process.env.BENCH_RSS_SERIES) console.log('rss MB every ~5 ms:', samples.join(' '))
  await pool.end()
  child.kill('SIGTERM')
  await svc.exited
  await server.close()
  return { seconds, peakRss }
}

/** A `ws` client that only counts frames: what the relay and the socket allow at most. */
const ceiling = async () => {
  const server = await spawnRelay(frames)
  // From the first frame on the wire: the consumer's own start-up is not counted.
  const started = server.firstConnection()
  await new Promise<void>((resolve, reject) => {
    let n = 0
    const socket = new WebSocket(`${server.url}/xrpc/com.atproto.sync.subscribeRepos`)
    socket.on('message', () => {
      if (++n === FRAMES) {
        socket.terminate()
        resolve()
      }
    })
    socket.on('error', reject)
  })
  const seconds = (performance.now() - (await started)) / 1000
  await server.close()
  return FRAMES / seconds
}

/**
 * @atproto/sync's Firehose on `stream`. By default it also resolves the handle of every
 * `#identity` event (DNS, then HTTPS), which this indexer never does; `excludeIdentity` leaves that
 * out so that the two do comparable work.
 */
const baseline = async (stream: readonly Uint8Array[], excludeIdentity: boolean) => {
  const server = await spawnRelay(stream)
  const idResolver = new IdResolver({ plcUrl: net.plcUrl, didCache: new MemoryCache(), fetch: globalThis.fetch })
  let resolve: () => void = () => {}
  const done = new Promise<void>((r) => (resolve = r))
  const firehose = new Firehose({
    service: server.url,
    idResolver,
    filterCollections: ['pub.chive.collaboration.invite', 'pub.chive.collaboration.inviteAcceptance'],
    excludeIdentity,
    getCursor: async () => 0,
    handleEvent: async (evt) => {
      if ('seq' in evt && evt.seq === lastSeq) resolve()
    },
    onError: () => {},
  })
  // From the first frame on the wire: the consumer's own start-up is not counted.
  const started = server.firstConnection()
  void firehose.start()
  await done
  const seconds = (performance.now() - (await started)) / 1000
  await firehose.destroy()
  await server.close()
  return { seconds, frames: stream.length }
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
const only = new Set((process.env.BENCH_ONLY ?? 'ceiling,ours,service,baseline').split(','))
const wsOnly = only.has('ceiling') ? await ceiling() : NaN
const a = only.has('ours') ? await ours() : { seconds: NaN }
const svc = only.has('service') ? await service() : { seconds: NaN, peakRss: NaN }
if (session && profile) {
  const { profile: data } = (await session.post('Profiler.stop')) as { profile: unknown }
  writeFileSync(profile, JSON.stringify(data))
}
// The default consumer is slow enough on #identity events to be measured on a prefix of the stream.
const prefix = [...frames.slice(0, Math.min(FRAMES, BASELINE_FRAMES) - 1), last]
const none = { seconds: NaN, frames: 0 }
const b = only.has('baseline') ? await baseline(prefix, false) : none
const bx = only.has('baseline') ? await baseline(frames, true) : none
const rate = (r: { seconds: number; frames: number }) => r.frames / r.seconds
const results = {
  frames: FRAMES,
  avgBytes: Math.round(avgBytes),
  chiveShare: corpus.chiveFrames / FRAMES,
  wsOnly,
  indexer: FRAMES / a.seconds,
  service: FRAMES / svc.seconds,
  serviceRssMb: svc.peakRss / 1e6,
  baselineDefault: rate(b),
  baselineNoIdentity: rate(bx),
  verifyMs,
}
console.log(`ingest of ${FRAMES} frames (avg ${Math.round(avgBytes)} B, ${((corpus.chiveFrames / FRAMES) * 100).toFixed(2)}% Chive commits), over a local WebSocket from a relay process of its own`)
console.log('| consumer | frames | seconds | frames/s | this indexer is |')
console.log('|---|---|---|---|---|')
console.log(`| a \`ws\` client that only counts frames (the ceiling) | ${FRAMES} | ${(FRAMES / wsOnly).toFixed(2)} | ${Math.round(wsOnly)} | |`)
console.log(`| this indexer (verified, committed to Postgres) | ${FRAMES} | ${a.seconds.toFixed(2)} | ${Math.round(results.indexer)} | |`)
console.log(`| the service as \`npm start\` runs it (own process, API and workers up) | ${FRAMES} | ${svc.seconds.toFixed(2)} | ${Math.round(results.service)} | |`)
console.log(`| @atproto/sync Firehose, its defaults (filterCollections, verification on) | ${b.frames} | ${b.seconds.toFixed(2)} | ${Math.round(rate(b))} | ${(results.indexer / rate(b)).toFixed(1)}x |`)
console.log(`| the same with excludeIdentity (no handle lookups) | ${bx.frames} | ${bx.seconds.toFixed(2)} | ${Math.round(rate(bx))} | ${(results.indexer / rate(bx)).toFixed(1)}x |`)
console.log(`relevant-commit verification: ${verifyMs.toFixed(2)} ms per commit (signature, CAR hashes, MST proof)`)
console.log(`peak RSS of the service process while it ingested: ${Math.round(results.serviceRssMb)} MB`)
if (process.env.BENCH_JSON) writeFileSync(process.env.BENCH_JSON, JSON.stringify({ ingest: results }))
await net.close()
await db.stop()
process.exit(0)
