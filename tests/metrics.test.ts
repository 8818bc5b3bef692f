import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LIST_INVITES, createUser, startHarness, waitFor, type Harness, type User } from './support/harness.ts'
import { views } from './support/views.ts'
import { parseExposition, value } from './support/exposition.ts'

let h: Harness
let alice: User
let bob: User

beforeAll(async () => {
  h = await startHarness()
  ;[alice, bob] = await Promise.all([createUser('mta'), createUser('mtb')])
})
afterAll(async () => {
  await h?.stop()
})

const scrape = async () => {
  const res = await fetch(`${h.service.url}/metrics`)
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
  return parseExposition(await res.text())
}

const P = 'chive_indexer_'

describe('GET /metrics', () => {
  it('serves valid Prometheus text whose counters move with real events', async () => {
    const v = views(h)
    await v.barrier(alice, bob)
    const before = await scrape()
    expect(before.types.get(`${P}frames_received_total`)).toBe('counter')
    expect(before.types.get(`${P}api_request_duration_seconds`)).toBe('histogram')
    expect(before.types.get(`${P}lag_seconds`)).toBe('gauge')
    const indexedBefore = value(before.samples, `${P}events_indexed_total`) as number
    const framesBefore = value(before.samples, `${P}frames_received_total`) as number
    expect(indexedBefore).toBeGreaterThan(0)

    const node = await alice.node()
    const invite = await alice.invite(node, bob)
    // A self-invite is rejected: it must show up under its reason.
    await alice.invite(node, alice)
    await v.waitForState(bob, invite.uri, 'pending')
    const after = await waitFor(async () => {
      const s = await scrape()
      // The rejection is counted when processed, the indexed effects when their commit returns:
      // under load a reader can see one before the other.
      const rejected = (value(s.samples, `${P}events_rejected_total`, { reason: 'self-invite' }) ?? 0) >= 1
      return rejected && (value(s.samples, `${P}events_indexed_total`) ?? 0) > indexedBefore ? s : undefined
    }, 'the rejection and the new invite to be counted')
    expect(value(after.samples, `${P}events_indexed_total`)).toBeGreaterThan(indexedBefore)
    expect(value(after.samples, `${P}frames_received_total`)).toBeGreaterThan(framesBefore)
    expect(value(after.samples, `${P}relay_connected`)).toBe(1)
    expect(value(after.samples, `${P}lag_seconds`)).toBeGreaterThanOrEqual(0)
    expect(value(after.samples, `${P}verify_queue_depth`)).toBeGreaterThanOrEqual(0)
    expect(value(after.samples, `${P}database_up`)).toBe(1)
    // Subjects seen on the stream are proven in the ingest transaction: no proof fetch to count.
    for (const family of ['verify_outcomes_total', 'backfill_repos_synced_total', 'relay_reconnects_total']) {
      expect(after.types.get(P + family)).toBe('counter')
    }
    expect(after.types.get(`${P}backfill_repos_pending`)).toBe('gauge')
    const health = await h.get<{ cursor: number }>('_health')
    expect(value(after.samples, `${P}cursor`)).toBeLessThanOrEqual(health.body.cursor)
    expect(value(after.samples, `${P}cursor`)).toBeGreaterThan(0)
    // The listInvites calls made by the views above, under their route and status.
    const route = { route: `/xrpc/${LIST_INVITES}`, method: 'GET', status_code: '200' }
    expect(value(after.samples, `${P}api_request_duration_seconds_count`, route)).toBeGreaterThan(0)
    expect(value(after.samples, `${P}api_request_duration_seconds_bucket`, { ...route, le: '+Inf' })).toBe(
      value(after.samples, `${P}api_request_duration_seconds_count`, route),
    )
    // Paths that match no route share one label value.
    await fetch(`${h.service.url}/xrpc/no.such.method${Math.random()}`)
    // Observed once the response is finished, which may be after the client has it.
    const unmatched = await waitFor(async () => {
      const s = await scrape()
      return (value(s.samples, `${P}api_request_duration_seconds_count`, { route: 'unmatched', status_code: '501' }) ?? 0) > 0 ? s : undefined
    }, 'the unmatched request to be observed')
    // Process metrics come with it.
    expect(value(unmatched.samples, 'process_cpu_user_seconds_total')).toBeGreaterThan(0)
  })
})
