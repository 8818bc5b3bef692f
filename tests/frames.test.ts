import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encode } from './support/cbor.ts'
import { commitBody, frame } from './support/frames.ts'
import { FORGERIES } from './support/forgeries.ts'
import { decodeFrame, type CommitEvent } from '../src/sources/firehose-frame.ts'
import { normaliseRelayUrl } from '../src/config.ts'
import { createUser, pdsUrl, startHarness, waitFor, type Harness, type User } from './support/harness.ts'
import { captureFrames, startReplayRelay, touches, type ReplayRelay } from './support/replay-relay.ts'
import { views } from './support/views.ts'

let relay: ReplayRelay
let h: Harness
let alice: User
let bob: User
let goodInvite: string
let goodFrame: Uint8Array

beforeAll(async () => {
  ;[alice, bob] = await Promise.all([createUser('alice'), createUser('bob')])
  const node = await alice.node()
  const invite = await alice.invite(node, bob)
  goodInvite = invite.uri
  const path = invite.uri.split('/').slice(3).join('/')
  const frames = await captureFrames(normaliseRelayUrl(pdsUrl()), 0, touches(path))
  const good = frames[frames.length - 1] as Uint8Array
  goodFrame = good
  const evt = decodeFrame(good) as CommitEvent
  const base = evt.seq
  // The bad frames come first, with seqs before the genuine commit.
  const hostile: Uint8Array[] = [
    good.slice(0, Math.floor(good.length / 2)),
    new Uint8Array([0xff, 0x00, 0x13, 0x37]),
    encode({ op: 1, t: '#commit' }),
    frame({ op: 1, t: '#commit' }, { seq: base - 7, repo: 42, ops: 'nope' }),
    frame({ op: 1, t: '#commit' }, { ...commitBody(evt), seq: base - 6, blocks: new Uint8Array([1, 2, 3]) }),
    await FORGERIES['bad-signature'](evt, base - 5),
    await FORGERIES['bad-car'](evt, base - 4),
    await FORGERIES['unproven-op'](evt, base - 3),
    frame({ op: 1, t: '#identity' }, { seq: base - 2, did: 'not a did' }),
    frame({ op: 1, t: '#info' }, { name: 'OutdatedCursor', message: 'too old' }),
    frame({ op: -1 }, { error: 'FutureCursor', message: 'cursor in the future' }),
    good,
  ]
  relay = await startReplayRelay(hostile)
  h = await startHarness({ relayUrl: relay.url })
})
afterAll(async () => {
  await h?.stop()
  await relay?.close()
})

interface Health {
  cursor: number
  ingest: {
    malformed: Record<string, number>
    rejected: Record<string, number>
    problems: Record<string, { count: number }>
  }
}

describe('hand-built bad frames', () => {
  it('are counted and skipped, and the next good event is still indexed', async () => {
    await views(h).waitForState(bob, goodInvite, 'pending')
    const health = await waitFor(async () => {
      const res = await h.get<Health>('_health')
      return res.body.ingest.rejected['unproven-op'] ? res.body : undefined
    }, 'the health report to include the rejections')
    expect(health.ingest.malformed).toMatchObject({ 'bad-cbor': 2, 'bad-frame': 1, 'bad-field': 2 })
    expect(health.ingest.rejected).toMatchObject({ 'bad-car': 2, 'bad-signature': 1, 'unproven-op': 1 })
    expect(health.ingest.problems.OutdatedCursor?.count).toBe(1)
    expect(health.ingest.problems.FutureCursor?.count).toBe(1)
    const rejections = await h.service.pool.query('SELECT reason FROM rejection WHERE uri = $1 ORDER BY reason', [goodInvite])
    expect(rejections.rows.map((r: { reason: string }) => r.reason)).toEqual(['bad-car', 'bad-car', 'bad-signature', 'unproven-op'])
  })

  it('reconnects after the relay drops it, resuming from the last seq it read', async () => {
    const seq = decodeFrame(goodFrame) as CommitEvent
    await waitFor(async () => (await h.get<Health>('_health')).body.cursor === seq.seq, 'the cursor to reach the good commit')
    expect(relay.cursors).toEqual(['0'])
    relay.dropAll()
    await waitFor(async () => relay.cursors.length === 2, 'a reconnection')
    expect(relay.cursors[1]).toBe(String(seq.seq))
    const health = await waitFor(async () => {
      const body = (await h.get<Health & { ingest: { reconnects: number; connected: boolean } }>('_health')).body
      return body.ingest.reconnects >= 1 && body.ingest.connected ? body : undefined
    }, 'health to show the reconnection')
    expect(health.ingest.reconnects).toBe(1)
  })
})
