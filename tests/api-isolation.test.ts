import autocannon from 'autocannon'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { cachedFor } from '../src/api/cache.ts'
import { assertValidOutput, createUser, LIST_COLLABORATORS, startHarness, testConfig, waitFor, type Harness, type User } from './support/harness.ts'
import { views } from './support/views.ts'

interface Collaborators {
  collaborators: { did: string; acceptanceUri: string; acceptedAt: string }[]
  cursor?: string
}

describe('the API cannot starve ingest', () => {
  let h: Harness
  let owner: User
  beforeAll(async () => {
    h = await startHarness({ api: { ...testConfig('x').api, statementTimeoutMs: 300 } })
    owner = await createUser('isoown')
  })
  afterAll(async () => {
    await h?.stop()
  })

  it('pages listCollaborators with a cursor instead of cutting it short', async () => {
    const node = await owner.node()
    const invitees = await Promise.all(Array.from({ length: 5 }, (_, i) => createUser(`isoc${i}`)))
    for (const u of invitees) await u.accept(await owner.invite(node, u), node)
    const v = views(h)
    const all = await waitFor(async () => {
      const c = await v.collaborators(node.uri)
      return c.length === invitees.length ? c : undefined
    }, 'every collaborator')
    const seen: string[] = []
    let cursor: string | undefined
    let pages = 0
    do {
      const res = await h.get<Collaborators>(LIST_COLLABORATORS, { subjectUri: node.uri, limit: 2, ...(cursor ? { cursor } : {}) })
      expect(res.status).toBe(200)
      assertValidOutput(LIST_COLLABORATORS, res.body)
      expect(res.body.collaborators.length).toBeLessThanOrEqual(2)
      seen.push(...res.body.collaborators.map((c) => c.did))
      cursor = res.body.cursor
      pages++
    } while (cursor)
    expect(pages).toBe(3)
    // Every collaborator once, in the order of the unpaged answer (oldest acceptance first).
    expect(seen).toEqual(all.map((c) => c.did))
    const bad = await h.get(LIST_COLLABORATORS, { subjectUri: node.uri, cursor: 'not a cursor' })
    expect(bad.status).toBe(400)
    const tooMany = await h.get(LIST_COLLABORATORS, { subjectUri: node.uri, limit: 1001 })
    expect(tooMany.status).toBe(400)
  })

  it('cancels slow API statements; the ingest pool is not bound by that limit', async () => {
    await expect(h.service.apiPool.query('SELECT pg_sleep(2)')).rejects.toMatchObject({ code: '57014' })
    await expect(h.service.pool.query('SELECT pg_sleep(0.5)')).resolves.toBeDefined()
  })

  it('answers a query cancelled by the statement timeout with 503, not 500', async () => {
    // A lock held by the ingest side makes the API's read wait past its 300 ms limit.
    const client = await h.service.pool.connect()
    try {
      await client.query('BEGIN')
      await client.query('LOCK TABLE acceptance, invite IN ACCESS EXCLUSIVE MODE')
      const res = await h.get<{ error: string; message: string }>(LIST_COLLABORATORS, { subjectUri: `at://${owner.did}/pub.chive.graph.node/x` })
      expect(res.status).toBe(503)
      expect(res.body.error).toBe('ServiceUnavailable')
      expect(res.body.message).toMatch(/took longer than 300 ms/)
    } finally {
      await client.query('ROLLBACK')
      client.release()
    }
  })

  it('reads the database for _health and /metrics about once a second, however often they are asked', async () => {
    const spy = vi.spyOn(h.service.apiPool, 'query')
    try {
      const result = await autocannon({
        url: h.service.url,
        connections: 16,
        duration: 2,
        requests: [{ method: 'GET', path: '/xrpc/_health' }, { method: 'GET', path: '/metrics' }],
      })
      expect(result.non2xx).toBe(0)
      expect(result.requests.total).toBeGreaterThan(500)
      // A handful of statements per read of each, about once a second each: tens, not thousands.
      expect(spy.mock.calls.length).toBeLessThan(60)
    } finally {
      spy.mockRestore()
    }
  })

  it('keeps ingest fresh under an API flood', async () => {
    const invitee = await createUser('isoflood')
    const node = await owner.node()
    const v = views(h)
    const flood = autocannon({
      url: h.service.url,
      connections: 32,
      duration: 4,
      requests: [
        { method: 'GET', path: '/xrpc/_health' },
        { method: 'GET', path: '/metrics' },
        { method: 'GET', path: `/xrpc/${LIST_COLLABORATORS}?subjectUri=${encodeURIComponent(node.uri)}` },
      ],
    })
    const lags: number[] = []
    // Writes during the flood, each timed from its write to its listing.
    for (let i = 0; i < 5; i++) {
      const started = Date.now()
      const invite = await owner.invite(node, invitee)
      await waitFor(async () => (await v.find(invitee, invite.uri)) !== undefined, 'the invite to be listed', 10_000)
      lags.push(Date.now() - started)
      await new Promise((r) => setTimeout(r, 300))
    }
    const result = await flood
    expect(result.non2xx).toBe(0)
    expect(result.errors).toBe(0)
    expect(result.requests.total).toBeGreaterThan(500)
    // On a shared two-core machine: bounded, not fast.
    expect(Math.max(...lags)).toBeLessThan(3000)
    // The cursor went on moving with the flood on.
    const health = await h.get<{ cursor: number | null }>('_health')
    expect(health.status).toBe(200)
  }, 60_000)

  it('shares one read among the callers of a second, and does not keep a failure', async () => {
    let now = 0
    let reads = 0
    let fail = false
    const read = cachedFor(
      1000,
      async () => {
        reads++
        if (fail) throw new Error('database away')
        return reads
      },
      () => now,
    )
    expect(await Promise.all([read(), read(), read()])).toEqual([1, 1, 1])
    now = 999
    expect(await read()).toBe(1)
    now = 1000
    expect(await read()).toBe(2)
    fail = true
    now = 5000
    await expect(read()).rejects.toThrow(/away/)
    fail = false
    expect(await read()).toBe(4)
    expect(reads).toBe(4)
  })
})
