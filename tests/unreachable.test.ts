import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startHarness, testConfig, waitFor, type Harness } from './support/harness.ts'
import { refusedPort } from './support/postgres.ts'
import { parseExposition, value } from './support/exposition.ts'
import { createMetrics } from '../src/api/metrics.ts'
import { createPool } from '../src/db/pool.ts'
import { pino } from 'pino'
import { Backfiller } from '../src/workers/backfill.ts'
import { createIdResolver } from '../src/atproto/identity.ts'
import { lexicons } from './support/harness.ts'

// A fresh service whose relay and discovery host do not answer, as an operator with a wrong
// RELAY_URL sees it: health must say so from the start, and nothing else may lie about it.

let h: Harness
let relayPort: number
let discoveryUrl: string

interface Health {
  cursor: number | null
  ingestState: string
  ingestUpdatedAt: string | null
  ingest: { connected: boolean; lastDisconnectReason: string | null; nextRetryInMs: number | null; reconnects: number } | null
  backfill: { runs: { kind: string; status: string; discovery?: { error: string; failures: number; retryAt: string | null } }[] }
}

beforeAll(async () => {
  relayPort = await refusedPort()
  discoveryUrl = `http://127.0.0.1:${await refusedPort([relayPort])}`
  h = await startHarness({
    relayUrl: `ws://127.0.0.1:${relayPort}`,
    startCursor: undefined,
    relayMaxBackoffMs: 2000,
    backfill: { ...testConfig('x').backfill, url: discoveryUrl, onGap: true },
  })
})
afterAll(async () => {
  await h?.stop()
})

describe('a relay that does not answer', () => {
  it('shows in _health before any cursor exists: connecting, the disconnect reason, the next retry', async () => {
    const health = await waitFor(async () => {
      const res = await h.get<Health>('_health')
      return res.body.ingest?.lastDisconnectReason ? res.body : undefined
    }, 'the ingester to report its failed connection', 15_000)
    expect(health.cursor).toBeNull()
    expect(health.ingest?.connected).toBe(false)
    expect(health.ingest?.lastDisconnectReason).toMatch(/ECONNREFUSED/)
    expect(['connecting', 'waiting']).toContain(health.ingestState)
    expect(health.ingestUpdatedAt).not.toBeNull()
    // A retry is scheduled and said so, once one is.
    const waiting = await waitFor(async () => {
      const res = await h.get<Health>('_health')
      return res.body.ingestState === 'waiting' ? res.body : undefined
    }, 'a scheduled retry to be reported', 15_000)
    expect(waiting.ingest?.nextRetryInMs).toBeGreaterThan(0)
    // The status keeps being written without a cursor: it does not freeze at its first value.
    const later = await waitFor(async () => {
      const res = await h.get<Health>('_health')
      return (res.body.ingest?.reconnects ?? 0) > (waiting.ingest?.reconnects ?? 0) ? res.body : undefined
    }, 'a later status', 20_000)
    expect(later.cursor).toBeNull()
  }, 60_000)

  it('backs discovery off exponentially and reports the URL and the cause in _health', async () => {
    const run = await waitFor(async () => {
      const res = await h.get<Health>('_health')
      const r = res.body.backfill.runs.find((x) => x.kind === 'full')
      return r?.discovery && r.discovery.failures >= 3 ? r : undefined
    }, 'three failed discovery pages', 20_000)
    const discovery = run.discovery as { error: string; failures: number; failedAt: string; retryAt: string }
    expect(run.status).toBe('discovering')
    expect(discovery.error).toContain(`${discoveryUrl}/xrpc/com.atproto.sync.listReposByCollection`)
    expect(discovery.error).toMatch(/ECONNREFUSED/)
    // Failure n waits 1 s doubled n-1 times, jittered down to half at most: never the fixed 1 s.
    const waitMs = Date.parse(discovery.retryAt) - Date.parse(discovery.failedAt)
    const base = Math.min(300_000, 1000 * 2 ** (discovery.failures - 1))
    expect(waitMs).toBeGreaterThanOrEqual(base / 2 - 50)
    expect(waitMs).toBeLessThanOrEqual(base + 50)
    expect(waitMs).toBeGreaterThanOrEqual(2000 - 50)
  }, 40_000)

  it('logs each discovery failure once, with the URL, the cause and the next attempt, backing off to its cap', async () => {
    const lines: { msg: string; retryInMs?: number; url?: string }[] = []
    const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string }) })
    // A second worker on the same queue, with a short backoff so that the cap is reached quickly.
    const worker = new Backfiller({
      pool: h.service.pool,
      idResolver: createIdResolver({ plcUrl: h.config.plcUrl, allowPrivateNetwork: true, timeoutMs: 1000 }),
      lexicons,
      log,
      fetch: (input, init) => fetch(input, init),
      discoveryUrl,
      concurrency: 1,
      perHost: 1,
      ratePerHost: 10,
      maxAttempts: 1,
      backoffBaseMs: 10,
      backoffMaxMs: h.config.backfill.backoffMaxMs,
      leaseMs: h.config.backfill.leaseMs,
      discoveryBackoffMs: 40,
      discoveryMaxBackoffMs: 160,
      pollMs: 10,
    })
    worker.start()
    try {
      await waitFor(async () => lines.filter((l) => /discovery failed/.test(l.msg)).length >= 6, 'six discovery failures')
    } finally {
      const stopping = Date.now()
      await worker.stop()
      // No task sleeps through a backoff: stopping is prompt.
      expect(Date.now() - stopping).toBeLessThan(1000)
    }
    const failures = lines.filter((l) => /discovery failed/.test(l.msg))
    for (const line of failures) {
      expect(line.msg).toContain(`${discoveryUrl}/xrpc/com.atproto.sync.listReposByCollection`)
      expect(line.msg).toMatch(/fetch failed \(ECONNREFUSED/)
      expect(line.msg).toMatch(/retrying in \d+ m?s$/)
      expect(line.url).toBe(discoveryUrl)
    }
    const delays = failures.map((l) => l.retryInMs as number)
    // 40 ms doubling, jittered down to half at most, capped at 160 ms.
    expect(delays[0]).toBeGreaterThanOrEqual(20)
    expect(delays[0]).toBeLessThanOrEqual(40)
    for (const d of delays) expect(d).toBeLessThanOrEqual(160)
    for (const d of delays.slice(3)) expect(d).toBeGreaterThanOrEqual(80)
  })

  it('serves /metrics without a NaN: gauges with no value are left out', async () => {
    const res = await fetch(`${h.service.url}/metrics`)
    const text = await res.text()
    expect(text).not.toMatch(/\bNan\b/)
    const { samples, types } = parseExposition(text)
    expect(types.get('chive_indexer_lag_seconds')).toBe('gauge')
    // No event read yet: no lag, rather than NaN or a healthy-looking 0.
    expect(value(samples, 'chive_indexer_lag_seconds')).toBeUndefined()
    expect(value(samples, 'chive_indexer_last_seq')).toBeUndefined()
    expect(value(samples, 'chive_indexer_relay_connected')).toBe(0)
    expect(value(samples, 'chive_indexer_database_up')).toBe(1)
  })

  it('leaves the database figures out of /metrics while Postgres is away', async () => {
    const pool = createPool(`postgres://postgres@127.0.0.1:${await refusedPort()}/none`, 'public')
    try {
      const metrics = createMetrics({ pool, relayUrl: h.config.relayUrl, indexer: h.service.indexer, verifier: h.service.verifier, backfiller: h.service.backfiller })
      const text = await metrics.scrape()
      expect(text).not.toMatch(/\bNan\b/)
      const { samples, types } = parseExposition(text)
      expect(value(samples, 'chive_indexer_database_up')).toBe(0)
      for (const name of ['cursor', 'verify_queue_depth', 'verify_queue_oldest_age_seconds', 'repos_desynchronized']) {
        expect(types.get(`chive_indexer_${name}`), name).toBe('gauge')
        expect(value(samples, `chive_indexer_${name}`), name).toBeUndefined()
      }
    } finally {
      await pool.end()
    }
  })
})

describe('admin sign-in without ADMIN_PASSWORD', () => {
  it('says that no password is configured, not that it is wrong', async () => {
    const res = await fetch(`${h.service.url}/admin/sign-in`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ name: 'Dana', password: 'anything' }).toString(),
      redirect: 'manual',
    })
    const page = await res.text()
    expect(res.status).toBe(401)
    expect(page).toContain('No admin password is configured')
    expect(page).not.toContain('Wrong password')
    const api = await fetch(`${h.service.url}/xrpc/pub.chive.collabIndexer.admin.listBlockedInviters`, {
      headers: { authorization: `Basic ${Buffer.from('dana:anything').toString('base64')}` },
    })
    expect(api.status).toBe(401)
    expect(((await api.json()) as { message: string }).message).toMatch(/no admin password is configured/)
  })
})
