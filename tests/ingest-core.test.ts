import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { LowWaterMark, type Mark } from '../src/pipeline/low-water-mark.ts'
import { RepoQueues } from '../src/pipeline/repo-queue.ts'
import { TransientError } from '../src/lib/transient.ts'

describe('the low-water mark', () => {
  it('never passes an unfinished seq, never moves back, and reaches the last seq when all finish', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(20)), { minLength: 1, maxLength: 300 }), fc.nat(), (plan, seed) => {
        const lwm = new LowWaterMark()
        const open: Mark[] = []
        let previous = -1
        let rnd = seed
        const next = () => (rnd = (rnd * 1103515245 + 12345) % 2 ** 31)
        plan.forEach(([immediate, closeSome], i) => {
          const seq = (i + 1) * 3
          if (immediate) lwm.seen(seq)
          else open.push(lwm.open(seq))
          // Finish a few open seqs, in any order.
          for (let k = 0; k < closeSome % 3 && open.length > 0; k++) {
            const [m] = open.splice(next() % open.length, 1)
            lwm.close(m as Mark)
          }
          const value = lwm.value ?? -1
          expect(value).toBeGreaterThanOrEqual(previous)
          for (const m of open) expect(value).toBeLessThan(m.seq)
          previous = value
        })
        for (const m of open.splice(0)) lwm.close(m)
        expect(lwm.value).toBe(plan.length * 3)
        expect(lwm.inFlight).toBe(0)
      }),
      { seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31), numRuns: 300 },
    )
  })
})

interface TestJob {
  bytes: number
  n: number
}

const queues = (process: (did: string, job: TestJob) => Promise<void>, overflowed: [string, number[], string][] = [], maxPerRepo = 100) =>
  new RepoQueues<TestJob>({
    concurrency: 4,
    maxPerRepo,
    maxBytes: 1e9,
    maxParkMs: 60_000,
    baseBackoffMs: 20,
    maxBackoffMs: 50,
    process,
    onOverflow: (did, jobs, reason) => overflowed.push([did, jobs.map((j) => j.n), reason]),
    onPark: () => {},
  })

const until = async (cond: () => boolean, ms = 5000) => {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 5))
  }
}

describe('per-repo queues', () => {
  it('keeps each repo in order, parks a failing repo and lets the others go on', async () => {
    const done: [string, number, number][] = []
    let failures = 0
    const q = queues(async (did, job) => {
      // Yields without a timer: the others' twenty events take far less than one backoff.
      for (let i = 0; i < (job.n % 3) + 1; i++) await null
      if (did === 'did:plc:slow' && job.n === 0 && failures < 3) {
        failures++
        throw new TransientError('identity-unavailable', 'the PLC is away')
      }
      done.push([did, job.n, Date.now()])
    })
    for (let n = 0; n < 20; n++) for (const did of ['did:plc:a', 'did:plc:slow', 'did:plc:b']) q.push(did, { bytes: 10, n })
    await until(() => done.length === 60)
    for (const did of ['did:plc:a', 'did:plc:slow', 'did:plc:b']) {
      expect(done.filter((d) => d[0] === did).map((d) => d[1])).toEqual([...Array(20).keys()])
    }
    expect(failures).toBe(3)
    // The others finished before the parked repo's first event went through.
    const slowFirst = done.find((d) => d[0] === 'did:plc:slow')?.[2] as number
    const othersLast = Math.max(...done.filter((d) => d[0] !== 'did:plc:slow').map((d) => d[2]))
    expect(othersLast).toBeLessThanOrEqual(slowFirst)
    expect(q.jobs).toBe(0)
    expect(q.bytes).toBe(0)
    expect(q.parked).toBe(0)
    expect(q.parkedBytes).toBe(0)
  })

  it('a repo waiting for its DID document holds no slot, and retries as soon as the document is there', async () => {
    let release: (ok: boolean) => void = () => {}
    const ready = new Promise<boolean>((r) => (release = r))
    let keyKnown = false
    const done: string[] = []
    const q = new RepoQueues<TestJob>({
      concurrency: 1,
      maxPerRepo: 100,
      maxBytes: 1e9,
      maxParkMs: 60_000,
      // A long backoff: the retry must come from the document arriving, not from the timer.
      baseBackoffMs: 60_000,
      maxBackoffMs: 60_000,
      process: async (did, job) => {
        if (did === 'did:plc:new' && !keyKnown) throw new TransientError('identity-pending', 'fetching', undefined, ready)
        done.push(`${did}#${job.n}`)
      },
      onOverflow: () => {},
      onPark: () => {},
    })
    q.push('did:plc:new', { bytes: 1, n: 0 })
    for (let n = 0; n < 5; n++) q.push('did:plc:known', { bytes: 1, n })
    await until(() => done.length === 5)
    expect(done).toEqual([0, 1, 2, 3, 4].map((n) => `did:plc:known#${n}`))
    expect(q.parked).toBe(1)
    keyKnown = true
    const t0 = Date.now()
    release(true)
    await until(() => done.length === 6)
    expect(Date.now() - t0).toBeLessThan(1000)
    expect(q.parked).toBe(0)
    q.stop()
  })

  it('hands a parked repo over to a resync past its bound, with every event it held', async () => {
    const overflowed: [string, number[], string][] = []
    const done: number[] = []
    const q = queues(
      async (did, job) => {
        if (did === 'did:plc:down') throw new TransientError('identity-unavailable', 'down')
        done.push(job.n)
      },
      overflowed,
      5,
    )
    q.push('did:plc:down', { bytes: 1, n: 0 })
    await until(() => q.parked === 1)
    for (let n = 1; n <= 4; n++) q.push('did:plc:down', { bytes: 1, n })
    // A parked repo's events do not hold the reader back.
    expect(q.parkedBytes).toBe(5)
    expect(q.activeBytes).toBe(0)
    q.push('did:plc:down', { bytes: 1, n: 5 })
    q.push('did:plc:up', { bytes: 1, n: 99 })
    await until(() => overflowed.length === 1 && done.length === 1)
    expect(overflowed[0]?.[0]).toBe('did:plc:down')
    expect(overflowed[0]?.[1]).toEqual([0, 1, 2, 3, 4, 5])
    expect(q.parked).toBe(0)
    expect(q.jobs).toBe(0)
    expect(q.parkedBytes).toBe(0)
    q.stop()
  })
})

describe('the tracked-repo filter', () => {
  it('has no false negatives and few false positives', async () => {
    const { BloomFilter } = await import('../src/lib/bloom.ts')
    const filter = new BloomFilter(256 * 1024)
    const did = (i: number, tag: string) => `did:plc:${tag}${i.toString(36).padStart(20, 'x')}`
    for (let i = 0; i < 20_000; i++) filter.add(did(i, 'in'))
    for (let i = 0; i < 20_000; i++) expect(filter.has(did(i, 'in'))).toBe(true)
    let positives = 0
    for (let i = 0; i < 20_000; i++) if (filter.has(did(i, 'out'))) positives++
    expect(positives).toBeLessThan(200)
  })
})
