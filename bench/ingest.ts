/**
 * Ingest throughput on two stream profiles, each served over a local WebSocket by a relay process
 * of its own (pinned to core 1):
 *   - bluesky (`support/corpus.ts`): real frames of a local PDS, a Bluesky-like mix over deep
 *     repos, 0.2% Chive commits from 4 tracked repos;
 *   - tracked (`support/tracked-corpus.ts`): few repos, many of them tracked: 500 repos built in
 *     memory, 136 holding Chive records, ~28% of the frames from those, ~1.5% Chive commits,
 *     deep MSTs, unbroken sync 1.1 chains.
 * Consumed, each in a process of its own pinned to core 0 (`taskset -c 0`), from the first frame
 * on the wire to the end:
 *   - the service as `npm start` runs it (verification on, effects and cursor committed to
 *     Postgres), until its committed cursor reaches the last seq; its RSS sampled all along;
 *   - @atproto/sync's Firehose with `unauthenticatedHandles: true` (filterCollections, verification
 *     on): the fair baseline, over the whole stream, until it hands over the last invite;
 *   - the same Firehose with its defaults (a handle lookup for every #identity) on a prefix.
 * Usage: npm run bench:ingest [-- FRAMES] (default: 200,000 bluesky, 100,000 tracked).
 * Environment: BENCH_STREAM=bluesky|tracked|both (default both), BENCH_CHIVE_SHARE (bluesky
 * profile, default 0.002), BENCH_BASELINE_FRAMES (default 20000: the default Firehose's prefix),
 * BENCH_ONLY=ceiling,service,fair,defaults,ours (a subset; `baseline` = fair,defaults; `ours`, the
 * indexer in this process pinned to core 0, runs only when named), BENCH_PROFILE=file.cpuprofile
 * (with `ours`: a CPU profile of its run), BENCH_RSS_SERIES=1 (the service's RSS over the run),
 * BENCH_CHECK=1 (the tracked corpus checks its own frames), BENCH_SERVICE_LOG=file.log (the service's
 * output, one file per profile), BENCH_SERVICE_DIR=dir (run the service of another checkout, e.g.
 * `git archive HEAD` unpacked with a node_modules link), BENCH_JSON=file (figures as JSON),
 * BENCH_SUBSCRIBERS=N (the service reads the relay through a proxy opened once N push
 * subscriptions, of 100 other accounts, are connected: 0 for the same path without them).
 */
import { WebSocket } from 'ws'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import inspector from 'node:inspector/promises'
import os from 'node:os'
import path from 'node:path'
import { migrate } from '../src/db/migrate.ts'
import { createPool } from '../src/db/pool.ts'
import { readCursor } from '../src/db/stream-cursor.ts'
import { createIdResolver } from '../src/atproto/identity.ts'
import { loadLexicons } from '../src/atproto/lexicons.ts'
import { createLogger } from '../src/lib/log.ts'
import { loadConfig } from '../src/config.ts'
import { Indexer } from '../src/pipeline/indexer.ts'
import { decodeFrame, type CommitEvent } from '../src/sources/firehose-frame.ts'
import { invertOps, openCommit, proveOps } from '../src/atproto/chain.ts'
import { parsePublicKey, verifyAtcuteCommitSignature } from '../src/atproto/signature.ts'
import { startLocalNetwork } from '../tests/support/network.ts'
import { testPostgres } from '../tests/support/postgres.ts'
import { buildCorpus, type Corpus } from './support/corpus.ts'
import { spawnPinnedService, rssOf } from './support/pinned-service.ts'
import { spawnRelay, writeFramesFile } from './support/stream.ts'
import { buildTrackedCorpus } from './support/tracked-corpus.ts'

const PROFILES = ['bluesky', 'tracked'] as const
type ProfileName = (typeof PROFILES)[number]
const chosen = process.env.BENCH_STREAM ?? 'both'
if (chosen !== 'both' && !PROFILES.includes(chosen as ProfileName)) throw new Error(`BENCH_STREAM is bluesky, tracked or both, not ${chosen}`)
const profiles = PROFILES.filter((p) => chosen === 'both' || p === chosen)
const framesFor = (p: ProfileName) => Number(process.argv[2] ?? (p === 'bluesky' ? 200_000 : 100_000))
const BASELINE_FRAMES = Number(process.env.BENCH_BASELINE_FRAMES ?? 20_000)
const only = new Set(
  (process.env.BENCH_ONLY ?? 'ceiling,service,fair,defaults').split(',').flatMap((k) => (k === 'baseline' ? ['fair', 'defaults'] : [k])),
)

// The consumer measured gets core 0 to itself; the relay serving it runs on core 1.
if (spawnSync('taskset', ['--version']).status !== 0) throw new Error('taskset (util-linux) is needed to pin the consumers to one core')
const CONSUMER_CPU = '0'
const RELAY_CPU = os.availableParallelism() > 1 ? '1' : undefined

const log = createLogger('silent')
const db = await testPostgres()
const net = await startLocalNetwork()
const work = mkdtempSync(path.join(os.tmpdir(), 'bench-ingest-'))
const mb = (bytes: number) => Math.round(bytes / 1e6)
const n = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '-')
const s2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '-')
const ratio = (a: number, b: number) => (Number.isFinite(a / b) ? `${(a / b).toFixed(1)}x` : '-')

interface Stream {
  name: ProfileName
  corpus: Corpus & { trackedShare?: number; trackedRepos?: number; repos?: number }
  file: string
  count: number
  firstSeq: number
  corpusSeconds: number
}

/** A `ws` client that only counts frames: what the relay and the socket allow at most. */
const ceiling = async (st: Stream) => {
  const server = await spawnRelay({ file: st.file }, { cpus: RELAY_CPU })
  const started = server.firstConnection()
  await new Promise<void>((resolve, reject) => {
    let got = 0
    const socket = new WebSocket(`${server.url}/xrpc/com.atproto.sync.subscribeRepos`)
    socket.on('message', () => {
      if (++got === st.count) {
        socket.terminate()
        resolve()
      }
    })
    socket.on('error', reject)
  })
  const seconds = (performance.now() - (await started)) / 1000
  await server.close()
  return st.count / seconds
}

const QUARTERS = [0.25, 0.5, 0.75, 1]

const SUBSCRIBERS = process.env.BENCH_SUBSCRIBERS === undefined ? undefined : Number(process.env.BENCH_SUBSCRIBERS)
const PUSH_AUDIENCE = 'did:web:bench.test'

/** A TCP proxy to `target` whose port refuses connections until `open()`. */
const lateProxy = async (target: string) => {
  const { createServer, connect } = await import('node:net')
  const { freePort } = await import('../tests/support/postgres.ts')
  const port = await freePort()
  const to = new URL(target)
  const sockets = new Set<import('node:net').Socket>()
  const proxy = createServer((client) => {
    const upstream = connect(Number(to.port), to.hostname)
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => {
        client.destroy()
        upstream.destroy()
      })
      s.on('close', () => sockets.delete(s))
    }
    client.pipe(upstream)
    upstream.pipe(client)
  })
  return {
    url: `ws://127.0.0.1:${port}`,
    open: () => proxy.listen(port, '127.0.0.1'),
    close: () => {
      for (const s of sockets) s.destroy()
      proxy.close()
    },
  }
}

/** `count` subscriptions (of 100 accounts of the local PDS) to the service at `address`. */
const subscribe = async (address: string, count: number) => {
  const { createAccount } = await import('./support/corpus.ts')
  const lxm = 'pub.chive.collabIndexer.subscribeInvites'
  const accounts = await Promise.all(Array.from({ length: Math.min(100, Math.max(1, count)) }, (_, i) => createAccount(net.pdsUrl, `sub${i}`)))
  const tokens = await Promise.all(
    accounts.map(async (a) => (await a.agent.com.atproto.server.getServiceAuth({ aud: PUSH_AUDIENCE, lxm, exp: Math.floor(Date.now() / 1000) + 3600 })).data.token),
  )
  const sockets: WebSocket[] = []
  for (let i = 0; i < count; i += 200) {
    await Promise.all(
      Array.from({ length: Math.min(200, count - i) }, async (_, j) => {
        const ws = new WebSocket(`${address.replace(/^http/, 'ws')}/xrpc/${lxm}`, { headers: { authorization: `Bearer ${tokens[(i + j) % tokens.length]}` } })
        ws.on('error', () => {})
        await new Promise((r, rej) => {
          ws.once('open', r)
          ws.once('error', rej)
        })
        sockets.push(ws)
      }),
    )
  }
  console.log(`${count} subscriptions connected before the stream starts`)
  return { close: () => sockets.forEach((ws) => ws.terminate()) }
}

/** The service as `npm start` runs it, pinned to one core: throughput, its RSS over the run, its health at the end. */
const service = async (st: Stream) => {
  const server = await spawnRelay({ file: st.file }, { cpus: RELAY_CPU })
  // With BENCH_SUBSCRIBERS, the service reads the relay through a proxy that opens once that many
  // subscriptions are connected, so the whole stream is ingested while they listen.
  const gate = SUBSCRIBERS === undefined ? null : await lateProxy(server.url)
  const relayUrl = gate?.url ?? server.url
  const schema = `bench_ingest_svc_${st.name}_${Date.now()}`
  const svc = spawnPinnedService(
    {
      DATABASE_URL: db.url, DATABASE_SCHEMA: schema, RELAY_URL: relayUrl, PLC_URL: net.plcUrl, ALLOW_PRIVATE_NETWORK: 'true', START_CURSOR: '0', BACKFILL_ON_GAP: 'false',
      SERVICE_DID: PUSH_AUDIENCE, SUBSCRIBE_MAX_CONNECTIONS: String((SUBSCRIBERS ?? 0) + 100),
      // The subscribers all come from here, several per account (of 100).
      SUBSCRIBE_MAX_PER_ADDRESS: String((SUBSCRIBERS ?? 0) + 100), SUBSCRIBE_MAX_PER_DID: String(Math.ceil((SUBSCRIBERS ?? 0) / 100) + 10),
      RELAY_MAX_BACKOFF_MS: '100', RATE_LIMIT_MAX: '0',
    },
    CONSUMER_CPU,
    {
      logFile: process.env.BENCH_SERVICE_LOG ? process.env.BENCH_SERVICE_LOG.replace(/(\.\w+)?$/, `.${st.name}$1`) : undefined,
      cwd: process.env.BENCH_SERVICE_DIR,
    },
  )
  const pid = svc.child.pid as number
  const address = await svc.address
  const subscribers = gate ? await subscribe(address, SUBSCRIBERS ?? 0) : null
  gate?.open()
  const pool = createPool(db.url, schema)
  // From the first frame on the wire: the consumer's own start-up is not counted.
  const started = server.firstConnection()
  let peakRss = 0
  const series: number[] = []
  const atQuarter: number[] = []
  const peakInQuarter: number[] = QUARTERS.map(() => 0)
  let lastCursor: number | null = null
  let movedAt = performance.now()
  for (;;) {
    const rss = await rssOf(pid)
    peakRss = Math.max(peakRss, rss)
    series.push(mb(rss))
    // The committed cursor, read straight from the database: polling /xrpc/_health as often
    // would take the service's own time.
    const cursor = await readCursor(pool, relayUrl)
    // Progress through the backlog: what the relay has written to the socket (a few thousand
    // frames ahead of the service at most; its cursor is committed too rarely to tell), and the
    // end, when the committed cursor reaches the last seq.
    const done = cursor === st.corpus.lastSeq
    const progress = done ? 1 : Math.min(server.sent() / st.count, 0.999)
    const q = QUARTERS.findIndex((x) => progress <= x)
    if (q >= 0) peakInQuarter[q] = Math.max(peakInQuarter[q] as number, rss)
    for (const [i, x] of QUARTERS.entries()) if (progress >= x && atQuarter[i] === undefined) atQuarter[i] = rss
    if (done) break
    if (cursor !== lastCursor) {
      lastCursor = cursor
      movedAt = performance.now()
    } else if (performance.now() - movedAt > 120_000) {
      console.error(svc.output().slice(-20_000))
      throw new Error(`the service's cursor has not moved for 2 minutes (at ${cursor}, waiting for ${st.corpus.lastSeq})`)
    }
    await new Promise((r) => setTimeout(r, 5))
  }
  const seconds = (performance.now() - (await started)) / 1000
  const health = (await (await fetch(`${address}/xrpc/_health`)).json()) as {
    ingest?: { eventsIndexed?: number; staleIgnored?: number; resyncsRequested?: number; rejected?: Record<string, number>; malformed?: Record<string, number> }
    verificationQueue?: unknown
  }
  if (process.env.BENCH_RSS_SERIES) console.log(`service RSS MB every ~5 ms (${st.name}):`, series.join(' '))
  await pool.end()
  subscribers?.close()
  svc.child.kill('SIGTERM')
  await svc.exited
  gate?.close()
  await server.close()
  const ingest = health.ingest ?? {}
  return {
    seconds,
    peakRss,
    atQuarter: QUARTERS.map((_, i) => atQuarter[i] ?? NaN),
    peakInQuarter,
    health: {
      eventsIndexed: ingest.eventsIndexed ?? null,
      staleIgnored: ingest.staleIgnored ?? null,
      resyncsRequested: ingest.resyncsRequested ?? null,
      rejected: ingest.rejected ?? {},
      malformed: ingest.malformed ?? {},
      verificationQueue: health.verificationQueue ?? null,
    },
  }
}

/** @atproto/sync's Firehose (support/baseline-runner.ts), pinned to the service's core. */
const baseline = async (file: string, count: number, lastSeq: number, mode: 'fair' | 'defaults') => {
  const server = await spawnRelay({ file }, { cpus: RELAY_CPU })
  const runner = new URL('./support/baseline-runner.ts', import.meta.url).pathname
  const child = spawn('taskset', ['-c', CONSUMER_CPU, process.execPath, runner, server.url, net.plcUrl, String(lastSeq), mode], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const started = server.firstConnection()
  const limitMs = 600_000 + count * 10
  const report = await new Promise<{ events: Record<string, number>; errors: Record<string, number>; maxRssMb: number }>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`the ${mode} baseline did not finish within ${limitMs / 1000} s`))
    }, limitMs)
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      const line = out.split('\n').find((l) => l.startsWith('{"done"'))
      if (line) {
        clearTimeout(timer)
        resolve(JSON.parse(line) as never)
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`the ${mode} baseline exited ${code} before the last event`))
    })
  })
  const seconds = (performance.now() - (await started)) / 1000
  await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)))
  await server.close()
  return { seconds, frames: count, ...report }
}

/** This indexer in the benchmark's own process (pinned to core 0 meanwhile), for CPU profiles. */
const ours = async (st: Stream) => {
  const config = loadConfig()
  const server = await spawnRelay({ file: st.file }, { cpus: RELAY_CPU })
  const schema = `bench_ingest_${st.name}_${Date.now()}`
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
    // The configuration's own defaults (and INGEST_* from the environment), as `npm start` has them.
    relayIdleTimeoutMs: config.relayIdleTimeoutMs,
    relayMaxBackoffMs: config.relayMaxBackoffMs,
    limits: config.ingest,
  })
  const affinity = /list:\s*(\S+)/.exec(spawnSync('taskset', ['-p', '-c', String(process.pid)]).stdout.toString())?.[1] ?? '0-1023'
  spawnSync('taskset', ['-a', '-p', '-c', CONSUMER_CPU, String(process.pid)])
  try {
    const started = server.firstConnection()
    await indexer.start()
    while ((await readCursor(pool, server.url)) !== st.corpus.lastSeq) await new Promise((r) => setTimeout(r, 5))
    const seconds = (performance.now() - (await started)) / 1000
    await indexer.stop()
    return { seconds }
  } finally {
    spawnSync('taskset', ['-a', '-p', '-c', affinity, String(process.pid)])
    await pool.end()
    await server.close()
  }
}

/**
 * Verification of one relevant commit (the stream's last invite) as the service does it: CAR and
 * commit block, MST proof of each Chive op, inversion of every op, signature (libsecp256k1).
 */
const verifyMs = async (last: Uint8Array) => {
  const resolver = createIdResolver({ plcUrl: net.plcUrl, allowPrivateNetwork: true })
  const evt = decodeFrame(last) as CommitEvent
  const key = parsePublicKey(await resolver.did.resolveAtprotoKey(evt.repo))
  const ops = evt.ops.filter((op) => op.path.startsWith('pub.chive.'))
  const once = async () => {
    const opened = openCommit(evt)
    const proven = await proveOps(opened, ops, () => true)
    await invertOps(opened, evt.ops)
    if (proven.length !== ops.length || !verifyAtcuteCommitSignature(opened.signed, key)) throw new Error('verification failed')
  }
  await once()
  const rounds = 300
  const t = performance.now()
  for (let i = 0; i < rounds; i++) await once()
  return (performance.now() - t) / rounds
}

const buildStream = async (name: ProfileName): Promise<Stream> => {
  const count = framesFor(name)
  const t0 = performance.now()
  const corpus =
    name === 'bluesky'
      ? await buildCorpus(net.pdsUrl, { frames: count, chiveShare: Number(process.env.BENCH_CHIVE_SHARE ?? 0.002) })
      : await buildTrackedCorpus(net, { frames: count })
  const corpusSeconds = (performance.now() - t0) / 1000
  const file = path.join(work, `${name}.bin`)
  await writeFramesFile(corpus.frames, file)
  return { name, corpus, file, count, firstSeq: corpus.lastSeq - count + 1, corpusSeconds }
}

const figures: Record<string, unknown> = {}
for (const name of profiles) {
  const st = await buildStream(name)
  const { corpus, count } = st
  const frames = corpus.frames
  const last = frames[frames.length - 1] as Uint8Array
  const tracked = 'trackedShare' in corpus && corpus.trackedShare !== undefined
  console.log(`\n== ${name} stream: ${n(count)} frames, avg ${n(corpus.avgBytes)} B, built in ${st.corpusSeconds.toFixed(1)} s`)
  if ('timings' in corpus) console.log(`corpus time, ms: ${Object.entries(corpus.timings as Record<string, number>).map(([k, v]) => `${k} ${Math.round(v)}`).join(', ')}`)
  console.log(`mix: ${Object.entries(corpus.mix).sort((a, b) => b[1] - a[1]).map(([k, c]) => `${k} ${((c / count) * 100).toFixed(1)}%`).join(', ')}`)
  let decodeUs: number
  {
    const t = performance.now()
    for (const f of frames) decodeFrame(f)
    decodeUs = ((performance.now() - t) * 1000) / frames.length
  }
  const verify = await verifyMs(last)

  const profile = process.env.BENCH_PROFILE
  const session = profile && only.has('ours') ? new inspector.Session() : null
  if (session) {
    session.connect()
    await session.post('Profiler.enable')
    await session.post('Profiler.start')
  }
  const a = only.has('ours') ? await ours(st) : { seconds: NaN }
  if (session && profile) {
    const { profile: data } = (await session.post('Profiler.stop')) as { profile: unknown }
    writeFileSync(profiles.length > 1 ? profile.replace(/(\.cpuprofile)?$/, `.${name}$1`) : profile, JSON.stringify(data))
  }
  const wsOnly = only.has('ceiling') ? await ceiling(st) : NaN
  const svc = only.has('service') ? await service(st) : null
  const none = { seconds: NaN, frames: 0, events: {}, errors: {}, maxRssMb: NaN }
  const fair = only.has('fair') ? await baseline(st.file, count, corpus.lastSeq, 'fair') : none
  // The default consumer is slow enough on #identity events to be measured on a prefix of the stream.
  let defaults: typeof none = none
  if (only.has('defaults')) {
    const prefixFile = path.join(work, `${name}-prefix.bin`)
    await writeFramesFile([...frames.slice(0, Math.min(count, BASELINE_FRAMES) - 1), last], prefixFile)
    defaults = await baseline(prefixFile, Math.min(count, BASELINE_FRAMES), corpus.lastSeq, 'defaults')
    rmSync(prefixFile, { force: true })
  }
  rmSync(st.file, { force: true })

  const rate = (r: { seconds: number; frames: number }) => r.frames / r.seconds
  const serviceRate = svc ? count / svc.seconds : NaN
  const results = {
    frames: count,
    avgBytes: Math.round(corpus.avgBytes),
    chiveShare: corpus.chiveFrames / count,
    trackedShare: tracked ? corpus.trackedShare : null,
    corpusSeconds: st.corpusSeconds,
    decodeUs,
    verifyMs: verify,
    wsOnly,
    indexer: count / a.seconds,
    service: serviceRate,
    serviceRssMb: svc ? svc.peakRss / 1e6 : NaN,
    serviceRssAtQuarterMb: svc?.atQuarter.map((x) => x / 1e6) ?? [],
    serviceRssPeakInQuarterMb: svc?.peakInQuarter.map((x) => x / 1e6) ?? [],
    serviceHealth: svc?.health ?? null,
    baselineFair: rate(fair),
    baselineFairRssMb: fair.maxRssMb,
    baselineFairEvents: fair.events,
    baselineFairErrors: fair.errors,
    baselineDefault: rate(defaults),
    baselineDefaultFrames: defaults.frames,
    ratioFair: serviceRate / rate(fair),
    ratioDefault: serviceRate / rate(defaults),
  }
  figures[name] = results
  const describe = tracked
    ? `${((corpus.trackedShare as number) * 100).toFixed(1)}% of the frames from ${corpus.trackedRepos} tracked repos of ${corpus.repos}, ${((corpus.chiveFrames / count) * 100).toFixed(2)}% Chive commits`
    : `${((corpus.chiveFrames / count) * 100).toFixed(2)}% Chive commits`
  console.log(`\ningest, ${name} profile: ${n(count)} frames (avg ${n(corpus.avgBytes)} B, ${describe}); consumers pinned to core ${CONSUMER_CPU}, the relay to ${RELAY_CPU ? `core ${RELAY_CPU}` : 'any core'}`)
  console.log('| consumer | frames | seconds | frames/s | the service is | peak RSS MB |')
  console.log('|---|---|---|---|---|---|')
  console.log(`| a \`ws\` client that only counts frames (the ceiling, unpinned) | ${n(count)} | ${s2(count / wsOnly)} | ${n(wsOnly)} | | |`)
  if (only.has('ours')) console.log(`| this indexer in the benchmark's process (verified, committed) | ${n(count)} | ${s2(a.seconds)} | ${n(results.indexer)} | | |`)
  console.log(`| **the service as \`npm start\` runs it** (own process, API and workers up) | ${n(count)} | ${s2(svc?.seconds ?? NaN)} | ${n(serviceRate)} | | ${n(results.serviceRssMb)} |`)
  console.log(`| @atproto/sync Firehose, \`unauthenticatedHandles\` (the fair baseline; filterCollections, verification on) | ${n(fair.frames)} | ${s2(fair.seconds)} | ${n(rate(fair))} | ${ratio(serviceRate, rate(fair))} | ${n(fair.maxRssMb)} |`)
  console.log(`| the same with its defaults (a handle lookup per #identity), on a prefix | ${n(defaults.frames)} | ${s2(defaults.seconds)} | ${n(rate(defaults))} | ${ratio(serviceRate, rate(defaults))} | |`)
  if (svc) {
    const list = (xs: number[]) => xs.map((x) => n(x / 1e6)).join(' / ')
    console.log(`service RSS MB at 25 / 50 / 75 / 100% of the stream: ${list(svc.atQuarter)}; peak in each quarter: ${list(svc.peakInQuarter)}`)
    const h = svc.health
    console.log(
      `service health at the end: indexed ${h.eventsIndexed}, stale ${h.staleIgnored}, resyncs requested ${h.resyncsRequested}, rejected ${JSON.stringify(h.rejected)}, malformed ${JSON.stringify(h.malformed)}, verification queue ${JSON.stringify(h.verificationQueue)}`,
    )
  }
  if (only.has('fair')) console.log(`fair baseline handed over ${JSON.stringify(fair.events)}, errors ${JSON.stringify(fair.errors)}`)
  console.log(`decodeFrame alone: ${decodeUs.toFixed(1)} µs/frame; relevant-commit verification (chain.ts + signature): ${verify.toFixed(2)} ms per commit (signature, CAR hashes, MST proof)`)
  const mark = (ok: boolean) => (ok ? 'met' : 'not met')
  if (svc) {
    console.log(
      `goals: ≥ 50,000 frames/s ${mark(serviceRate >= 50_000)}; ≥ 3x the fair baseline ${mark(results.ratioFair >= 3)}; RSS ≤ 200 MB ${mark(results.serviceRssMb <= 200)}`,
    )
  }
}
rmSync(work, { recursive: true, force: true })
if (process.env.BENCH_JSON) writeFileSync(process.env.BENCH_JSON, JSON.stringify({ ingest: { profiles: figures } }))
await net.close()
await db.stop()
process.exit(0)
