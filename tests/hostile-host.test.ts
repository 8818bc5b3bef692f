import { describe, expect, inject, it } from 'vitest'
import { createUser, pdsUrl, startHarness, testConfig, waitFor } from './support/harness.ts'
import { startJetstreamStandIn } from './support/jetstream.ts'
import { startFaultProxy, startPlcFront } from './support/fault-proxy.ts'

/**
 * A repo's host is a stranger's server: what it asks of us (`Retry-After`) is honoured only up to
 * our own ceiling, and never turned into a loop. In Jetstream mode every record is proven from its
 * host, so a host that answers each proof with 429 and `Retry-After: 99999999` (over three years,
 * past Node's 2^31 ms timer limit, which fires such a timer at once) must be asked a handful of
 * times, not thousands.
 */
describe('a host that answers 429 with a huge Retry-After', () => {
  it('is asked a handful of times in 10 s, and its repo waits', async () => {
    const [inviter, invitee] = await Promise.all([createUser('hhinviter'), createUser('hhinvitee')])
    const proxy = await startFaultProxy(pdsUrl())
    const front = await startPlcFront(inject('plcUrl'), pdsUrl(), proxy.url, [inviter.did])
    const js = await startJetstreamStandIn({ pdsUrl: pdsUrl(), v2: true })
    const h = await startHarness({
      jetstream: { urls: [js.url], rewindMs: 2000, retentionMs: 24 * 3_600_000, reconcileMs: 0 },
      startCursor: undefined,
      plcUrl: front.url,
      ingest: { ...testConfig('x').ingest, maxParkMs: 60_000 },
    })
    try {
      await waitFor(async () => h.service.indexer.snapshotStatus().connected, 'the Jetstream subscription to open')
      proxy.retryAfter = '99999999'
      proxy.mode = 'rate-limited'
      const subject = await inviter.node('behind a hostile host')
      await inviter.invite(subject, invitee)
      await waitFor(async () => proxy.seen['rate-limited'] > 0, 'the host to be asked for a proof')
      await new Promise((r) => setTimeout(r, 10_000))
      expect(proxy.seen['rate-limited']).toBeLessThanOrEqual(5)
      expect(h.service.indexer.snapshotStatus().parkedRepos).toBeGreaterThan(0)
      // Nothing was rejected for it: a host's trouble is not a verdict.
      expect(h.service.indexer.snapshotStatus().rejected).toEqual({})
    } finally {
      await h.stop()
      await js.close()
      await front.close()
      await proxy.close()
    }
  }, 40_000)
})
