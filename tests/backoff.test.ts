import { describe, expect, it } from 'vitest'
import { backoff, parseRetryAfter, retryDelay, TIMER_MAX_MS } from '../src/lib/backoff.ts'
import { xrpcGet, TransientError, type Fetch } from '../src/atproto/host.ts'
import { RepoQueues } from '../src/pipeline/repo-queue.ts'

const low = () => 0
const high = () => 1 - Number.EPSILON

describe('backoff', () => {
  it('doubles from the base per attempt, jittered between half and all of it', () => {
    for (const [attempt, ceiling] of [
      [1, 100],
      [2, 200],
      [3, 400],
      [6, 3200],
    ] as const) {
      expect(backoff(attempt, 100, 1_000_000, low)).toBe(ceiling / 2)
      expect(backoff(attempt, 100, 1_000_000, high)).toBe(ceiling)
    }
  })

  it('stays within [ceiling/2, ceiling] for any draw', () => {
    for (let i = 0; i < 200; i++) {
      const d = backoff(4, 100, 1_000_000)
      expect(d).toBeGreaterThanOrEqual(400)
      expect(d).toBeLessThanOrEqual(800)
    }
  })

  it('never exceeds its cap, nor the timer limit, however many attempts failed', () => {
    expect(backoff(50, 100, 5000, high)).toBe(5000)
    expect(backoff(1e9, 100, 5000, high)).toBe(5000)
    expect(backoff(1e9, 1000, Number.MAX_SAFE_INTEGER, high)).toBeLessThanOrEqual(TIMER_MAX_MS)
  })

  it('treats an attempt below 1 as the first', () => {
    expect(backoff(0, 100, 1000, high)).toBe(100)
    expect(backoff(-3, 100, 1000, high)).toBe(100)
  })
})

describe('retryDelay', () => {
  it('waits at least what the server asked, at most the cap', () => {
    expect(retryDelay(1, 100, 10_000, 3000, high)).toBe(3000)
    expect(retryDelay(1, 100, 10_000, undefined, high)).toBe(100)
    expect(retryDelay(1, 100, 10_000, 50_000, high)).toBe(10_000)
  })
})

describe('parseRetryAfter', () => {
  const now = Date.parse('2025-01-01T00:00:00Z')
  const opts = { maxMs: 3_600_000, now }

  it('reads delay-seconds', () => {
    expect(parseRetryAfter('0', opts)).toBe(0)
    expect(parseRetryAfter('120', opts)).toBe(120_000)
    expect(parseRetryAfter(' 5 ', opts)).toBe(5000)
  })

  it('reads an HTTP-date, one in the past as now', () => {
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:30 GMT', opts)).toBe(30_000)
    expect(parseRetryAfter('Tue, 31 Dec 2024 23:00:00 GMT', opts)).toBe(0)
  })

  it('gives nothing for an absent or garbage header', () => {
    for (const garbage of [null, undefined, '', 'soon', '-5', '1e3', '0x10', 'Infinity', '12 parsecs', 'Xyz, not a date']) {
      expect(parseRetryAfter(garbage, opts)).toBeUndefined()
    }
  })

  it('caps a huge value at the caller\'s max', () => {
    expect(parseRetryAfter('99999999', opts)).toBe(3_600_000)
    expect(parseRetryAfter('9'.repeat(400), opts)).toBe(3_600_000)
    expect(parseRetryAfter('Fri, 31 Dec 9999 23:59:59 GMT', opts)).toBe(3_600_000)
  })

  it('never returns more than the timer limit, whatever max the caller names', () => {
    expect(parseRetryAfter('99999999', { maxMs: Number.MAX_SAFE_INTEGER, now })).toBe(TIMER_MAX_MS)
  })
})

describe('a hostile Retry-After', () => {
  const answering429 =
    (retryAfter: string): Fetch =>
    async () =>
      new Response('{}', { status: 429, headers: { 'retry-after': retryAfter } })

  it('from a PDS is bounded before any worker waits on it', async () => {
    const err = await xrpcGet(answering429('99999999'), new URL('https://pds.example/xrpc/com.atproto.sync.getRecord')).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TransientError)
    const wait = (err as TransientError).retryAfterMs
    expect(wait).toBeGreaterThan(0)
    expect(wait).toBeLessThanOrEqual(60 * 60_000)
  })

  it('never parks a repo for longer than a timer can wait', async () => {
    const parks: number[] = []
    const queues = new RepoQueues<{ bytes: number }>({
      concurrency: 1,
      maxPerRepo: 10,
      maxBytes: 1 << 20,
      maxParkMs: 60_000,
      baseBackoffMs: 10,
      maxBackoffMs: 100,
      process: async () => {
        throw new TransientError('rate-limited', 'told to wait', 1e11)
      },
      onOverflow: () => {},
      onPark: (_did, _err, _attempt, retryInMs) => void parks.push(retryInMs),
    })
    queues.push('did:plc:hostile', { bytes: 1 })
    await queues.idle()
    await new Promise((r) => setImmediate(r))
    queues.stop()
    expect(parks).toHaveLength(1)
    expect(parks[0]).toBeLessThanOrEqual(TIMER_MAX_MS)
  })
})
