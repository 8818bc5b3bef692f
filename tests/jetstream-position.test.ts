import { describe, expect, it } from 'vitest'
import { createUser, pdsUrl, rewindCursor, startHarness, testConfig, waitFor, type Harness } from './support/harness.ts'
import { startJetstreamStandIn, type JetstreamStandIn } from './support/jetstream.ts'
import { views } from './support/views.ts'

/**
 * Jetstream positions are times (time_us), and a time can be wrong in ways a relay's seq cannot:
 * from the future, or absent on a live tail whose first connection fails. Each must leave no
 * window of writes unseen.
 */

const jetstreamConfig = (urls: string[], extra: Record<string, unknown> = {}) => ({
  jetstream: { urls, rewindMs: 2000, retentionMs: 24 * 3_600_000, reconcileMs: 0 },
  startCursor: undefined,
  ...extra,
})

const connected = (h: Harness) => waitFor(async () => h.service.indexer.snapshotStatus().connected, 'the Jetstream subscription to open')
const committedCursor = async (h: Harness): Promise<number | null> => ((await h.get<{ cursor: number | null }>('_health')).body.cursor ?? null)
const FUTURE_US = 9e15

const withService = async (js: JetstreamStandIn, h: Harness, body: () => Promise<void>): Promise<void> => {
  try {
    await body()
  } finally {
    await h.stop()
    await js.close()
  }
}

describe('Jetstream positions', () => {
  it('a time_us from the future is malformed: it never becomes the cursor, and a restart still replays the downtime', async () => {
    const js = await startJetstreamStandIn({ pdsUrl: pdsUrl(), v2: true })
    const h = await startHarness(jetstreamConfig([js.url]))
    await withService(js, h, async () => {
      await connected(h)
      const v = views(h)
      const malformed = () => h.service.indexer.snapshotStatus().malformed['future-time'] ?? 0
      const payload = { $type: 'network.bsky.jetstream.subscribeEvents#identity', did: 'did:plc:aaaaaaaaaaaaaaaaaaaaaaaa', seq: 1, time: new Date().toISOString(), time_us: FUTURE_US }
      js.sendRaw(JSON.stringify({ $type: 'message', payload }), 'v2')
      await waitFor(async () => malformed() > 0, 'the future message to be counted as malformed')
      const [inviter, invitee] = await Promise.all([createUser('jfinviter'), createUser('jfinvitee')])
      const subject = await inviter.node('written after the future')
      const first = await inviter.invite(subject, invitee)
      await v.waitForState(invitee, first.uri, 'pending')
      const cursor = await waitFor(async () => {
        const c = await committedCursor(h)
        return c !== null && c > 1e15 ? c : undefined
      }, 'a cursor to be committed')
      expect(cursor).toBeLessThan((Date.now() + 60_000) * 1000)
      expect(h.service.indexer.snapshotStatus().lastSeq ?? 0).toBeLessThan(FUTURE_US)
      await h.service.stop()
      // Written while the service is down: only a replay from the committed cursor shows it.
      const second = await inviter.invite(subject, await createUser('jfdown'))
      await h.restart()
      const listed = await waitFor(async () => (await h.service.pool.query('SELECT 1 FROM invite WHERE uri = $1', [second.uri])).rowCount === 1, 'the downtime invite to be indexed', 20_000)
      expect(listed).toBe(true)
    })
  })

  it('a stored cursor from the future is forgotten at start and covered by a full backfill', async () => {
    const js = await startJetstreamStandIn({ pdsUrl: pdsUrl(), v2: true })
    const h = await startHarness(jetstreamConfig([js.url], { backfill: { ...testConfig('x').backfill, onGap: true } }))
    await withService(js, h, async () => {
      await connected(h)
      await waitFor(async () => ((await committedCursor(h)) ?? 0) > 1e15, 'a cursor to be committed')
      await h.service.stop()
      // What an earlier version may have committed.
      await rewindCursor(h, FUTURE_US)
      const connections = js.queries.length
      await h.restart()
      await connected(h)
      const asked = Number(js.queries[connections]?.get('cursor'))
      expect(asked).toBeLessThan((Date.now() + 60_000) * 1000)
      const status = h.service.indexer.snapshotStatus()
      expect(status.problems.FutureCursor?.count).toBe(1)
      // A new full run, or (the first start's run still going) the one owed after it.
      const runs = await h.service.pool.query<{ reason: string; followup_reason: string | null }>(
        `SELECT reason, followup_reason FROM backfill_run WHERE kind = 'full' ORDER BY id DESC LIMIT 1`,
      )
      const row = runs.rows[0]
      expect(`${row?.reason} | ${row?.followup_reason}`).toMatch(/lies in the future/)
    })
  })

  it('a live tail whose connection fails before its first event resumes from when it started', async () => {
    // v1 only, as an instance that refuses v2: the first connection attempt already fails.
    const js = await startJetstreamStandIn({ pdsUrl: pdsUrl() })
    const [inviter, invitee] = await Promise.all([createUser('jlinviter'), createUser('jlinvitee')])
    const subject = await inviter.node('written between connections')
    const h = await startHarness(jetstreamConfig([js.url]))
    await withService(js, h, async () => {
      await connected(h)
      // The instance restarts before anything reached us: no event, no cursor from the stream.
      js.refuse(true)
      js.disconnectAll()
      await waitFor(async () => !h.service.indexer.snapshotStatus().connected, 'the subscription to drop')
      const invite = await inviter.invite(subject, invitee)
      await waitFor(async () => js.retained().some((r) => r.event.kind === 'commit' && r.event.did === inviter.did && r.event.commit.rkey === invite.uri.split('/')[4]), 'the stand-in to hold the invite')
      js.refuse(false)
      await views(h).waitForState(invitee, invite.uri, 'pending')
    })
  })
})
