import type { ChildProcess } from 'node:child_process'
import { mkdtemp, chmod, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { normaliseRelayUrl } from '../src/config.ts'
import { startEmbeddedPostgres, type EmbeddedDb } from '../src/db/embedded.ts'
import { LIST_COLLABORATORS, createUser, freshSchema, pdsUrl, startHarness, testConfig, waitFor, type User } from './support/harness.ts'
import { startFaultRelay, type FaultRelay } from './support/fault-relay.ts'
import { captureFrames, markSeq, touches } from './support/replay-relay.ts'
import { expectOracle, prng, writeScenario, type Oracle } from './support/scenario.ts'
import { freePort } from './support/postgres.ts'
import { spawnService } from './support/service-process.ts'

const seed = Number(process.env.FAULT_SEED ?? Date.now() % 1_000_000)
const ws = () => normaliseRelayUrl(pdsUrl())
let oracle: Oracle
let frames: Uint8Array[]
let from: number

beforeAll(async () => {
  console.log(`fault tests: FAULT_SEED=${seed}`)
  const scribe: User = await createUser('scribe')
  from = await markSeq(ws(), scribe)
  oracle = await writeScenario(seed, { users: 6, steps: 120, noise: 900 })
  const end = await scribe.create('com.example.marker', { createdAt: new Date().toISOString() })
  frames = (await captureFrames(ws(), from, touches(end.uri.split('/').slice(3).join('/')), 30_000)).slice()
  expect(frames.length).toBeGreaterThan(1000)
}, 120_000)

const getFrom = (base: string) => async (nsid: string, params: Record<string, string | number>, token?: string) => {
  const url = new URL(`/xrpc/${nsid}`, base)
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, String(v))
  const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} })
  return { status: res.status, body: (await res.json()) as unknown }
}

interface Health {
  cursor: number | null
  leader: boolean
  ingest: { reconnects: number; stalls: number } | null
}
const health = async (base: string): Promise<Health> => (await (await fetch(`${base}/xrpc/_health`)).json()) as Health

const serviceEnv = (schema: string, relay: FaultRelay): Record<string, string> => {
  const c = testConfig(schema)
  return {
    DATABASE_URL: c.databaseUrl as string,
    DATABASE_SCHEMA: schema,
    RELAY_URL: relay.url,
    PLC_URL: c.plcUrl,
    SERVICE_DID: 'did:web:indexer.test',
    START_CURSOR: String(from),
    BACKFILL_ON_GAP: 'false',
    LEADER_RETRY_MS: '200',
    RELAY_MAX_BACKOFF_MS: '500',
  }
}

const kill = async (p: { child: ChildProcess; exited: Promise<unknown> }) => {
  p.child.kill('SIGKILL')
  await p.exited
}

describe('crash safety', () => {
  it('SIGKILLed at random points while ingesting, restarted each time, ends exactly at the oracle', async () => {
    const rand = prng(seed + 1)
    const relay = await startFaultRelay(frames, { rate: 400 })
    const schema = freshSchema()
    // The committed cursor just before each kill: where in the stream the kills landed.
    const at: number[] = []
    try {
      for (let i = 0; i < 10; i++) {
        const svc = spawnService(serviceEnv(schema, relay))
        const base = await svc.address
        await new Promise((r) => setTimeout(r, 150 + rand() * 450))
        at.push((await health(base)).cursor ?? from)
        await kill(svc)
      }
      const svc = spawnService(serviceEnv(schema, relay))
      try {
        const base = await svc.address
        await waitFor(async () => ((await health(base)).cursor ?? 0) >= relay.lastSeq, 'the cursor to reach the end', 60_000)
        await expectOracle(getFrom(base), oracle)
      } finally {
        await kill(svc)
      }
      // Kills landed in the middle of the stream, and none took back a committed cursor.
      expect(at.filter((c) => c > from && c < relay.lastSeq).length).toBeGreaterThanOrEqual(2)
      expect(at).toEqual([...at].sort((x, y) => x - y))
      expect(relay.stats.connections).toBeGreaterThanOrEqual(11)
    } finally {
      await relay.close()
    }
  }, 180_000)
})

describe('relay faults', () => {
  it('survives drops, silent stalls and a relay restarting from an earlier seq', async () => {
    const rand = prng(seed + 2)
    const relay = await startFaultRelay(frames, { rate: 600, dropChance: 0.01, stallChance: 0.004, stallMs: 1500, random: rand })
    const h = await startHarness({ relayUrl: relay.url, startCursor: from, relayIdleTimeoutMs: 400 })
    try {
      const half = from + Math.floor((relay.lastSeq - from) / 2)
      await waitFor(async () => ((await h.get<Health>('_health')).body.cursor ?? 0) >= half, 'half the stream', 60_000)
      relay.restartFrom(from + 1)
      await waitFor(async () => ((await h.get<Health>('_health')).body.cursor ?? 0) >= relay.lastSeq, 'the end of the stream', 90_000)
      await expectOracle(h.get as never, oracle)
      const status = (await h.get<Health>('_health')).body.ingest
      expect(relay.stats.drops).toBeGreaterThan(0)
      expect(relay.stats.stalls).toBeGreaterThan(0)
      expect(status?.stalls).toBeGreaterThan(0)
      expect(status?.reconnects).toBeGreaterThanOrEqual(relay.stats.drops)
    } finally {
      await h.stop()
      await relay.close()
    }
  }, 180_000)
})

describe('database faults', () => {
  let dir: string
  let db: EmbeddedDb | undefined
  let port: number
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'collab-dbfault-'))
    await chmod(dir, 0o755)
    port = await freePort()
  })
  afterAll(async () => {
    await db?.stop().catch(() => {})
    await rm(dir, { recursive: true, force: true })
  })

  it('waits out a Postgres restart mid-ingest, answers 503 meanwhile, and skips nothing', async () => {
    const start = () => startEmbeddedPostgres({ dir: path.join(dir, 'pg'), port })
    db = await start()
    const relay = await startFaultRelay(frames, { rate: 300 })
    const h = await startHarness({ relayUrl: relay.url, startCursor: from, databaseUrl: db.url })
    try {
      const third = from + Math.floor((relay.lastSeq - from) / 3)
      await waitFor(async () => ((await h.get<Health>('_health')).body.cursor ?? 0) >= third, 'a third of the stream', 60_000)
      await db.stop()
      db = undefined
      const down = await waitFor(async () => {
        const res = await h.get(LIST_COLLABORATORS, { subjectUri: `at://${oracle.users[0]?.did}/pub.chive.graph.node/x` })
        return res.status === 503 ? res : undefined
      }, 'a 503 while the database is away')
      expect(down.body).toMatchObject({ error: 'ServiceUnavailable' })
      // _health's reads are shared for a second: it says so within one.
      await waitFor(async () => (await h.get('_health')).status === 503, '_health to answer 503', 3000)
      await new Promise((r) => setTimeout(r, 1500))
      db = await start()
      await waitFor(async () => ((await h.get<Health>('_health')).body.cursor ?? 0) >= relay.lastSeq, 'the end of the stream', 90_000)
      await expectOracle(h.get as never, oracle)
    } finally {
      await h.stop()
      await relay.close()
    }
  }, 180_000)
})

describe('two replicas', () => {
  it('serve together, ingest one at a time, and the survivor takes over within 10 s of a SIGKILL', async () => {
    const relay = await startFaultRelay(frames, { rate: 250 })
    const schema = freshSchema()
    const a = spawnService(serviceEnv(schema, relay))
    let b: ReturnType<typeof spawnService> | undefined
    try {
      const baseA = await a.address
      await waitFor(async () => (await health(baseA)).leader, 'the first replica to lead')
      b = spawnService(serviceEnv(schema, relay))
      const baseB = await b.address
      expect((await health(baseB)).leader).toBe(false)
      expect((await getFrom(baseB)(LIST_COLLABORATORS, { subjectUri: `at://${oracle.users[0]?.did}/pub.chive.graph.node/x` })).status).toBe(200)
      await waitFor(async () => ((await health(baseA)).cursor ?? 0) > from + 50, 'some progress')
      expect((await health(baseB)).leader).toBe(false)
      await kill(a)
      const killedAt = Date.now()
      // Waits longer than the goal, so that a slow takeover fails on the measured time below.
      await waitFor(async () => (await health(baseB)).leader, 'the survivor to lead', 30_000)
      const takeoverMs = Date.now() - killedAt
      console.log(`failover: the surviving replica leads ${takeoverMs} ms after the SIGKILL`)
      expect(takeoverMs).toBeLessThan(10_000)
      await waitFor(async () => ((await health(baseB)).cursor ?? 0) >= relay.lastSeq, 'the end of the stream', 90_000)
      await expectOracle(getFrom(baseB), oracle)
    } finally {
      await kill(a)
      if (b) await kill(b)
      await relay.close()
    }
  }, 180_000)
})
