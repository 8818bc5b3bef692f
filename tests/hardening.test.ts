import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { normaliseRelayUrl } from '../src/config.ts'
import { decodeFrame, type CommitEvent } from '../src/sources/firehose-frame.ts'
import { runUpkeep } from '../src/db/retention.ts'
import { commitBody, frame } from './support/frames.ts'
import { createUser, pdsUrl, startHarness, waitFor, type Harness, type User, rewindCursor } from './support/harness.ts'
import { captureFrames, startReplayRelay, touches, type ReplayRelay } from './support/replay-relay.ts'
import { views } from './support/views.ts'
import { revAt } from './support/tid.ts'

const pathOf = (uri: string) => uri.split('/').slice(3).join('/')

interface Health {
  cursor: number | null
  ingest: { rejected: Record<string, number> }
}

describe('events the index refuses or ignores', () => {
  let relay: ReplayRelay
  let h: Harness
  let alice: User
  let bob: User
  let invite: { uri: string; cid: string }
  let node: { uri: string; cid: string }
  let lastSeq: number

  beforeAll(async () => {
    ;[alice, bob] = await Promise.all([createUser('harda'), createUser('hardb')])
    node = await alice.node()
    invite = await alice.invite(node, bob)
    const accepted = await bob.accept(invite, node)
    const frames = await captureFrames(normaliseRelayUrl(pdsUrl()), 0, touches(pathOf(accepted.uri)))
    const genuine = decodeFrame(frames.find(touches(pathOf(invite.uri))) as Uint8Array) as CommitEvent
    const last = decodeFrame(frames[frames.length - 1] as Uint8Array) as CommitEvent
    lastSeq = last.seq + 3
    // The hostile frames come before the genuine history (lower seqs), so nothing held is newer.
    const hostile = [
      frame({ op: 1, t: '#commit' }, { ...commitBody(genuine), seq: 1, rev: revAt(60 * 60 * 1000) }),
      frame({ op: 1, t: '#commit' }, { ...commitBody(genuine), seq: 2, repo: 'did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme' }),
    ]
    const after = [
      // The host says its stream of bob is incomplete: catch up, hide nothing.
      frame({ op: 1, t: '#account' }, { seq: last.seq + 1, did: bob.did, active: false, status: 'desynchronized', time: new Date().toISOString() }),
      frame({ op: 1, t: '#account' }, { seq: last.seq + 2, did: alice.did, active: false, status: 'throttled', time: new Date().toISOString() }),
      // A replay of the invite's creation, at the rev it had: older than what is held of alice.
      frame({ op: 1, t: '#commit' }, { ...commitBody(genuine), seq: last.seq + 3 }),
    ]
    relay = await startReplayRelay([...hostile, ...frames.filter((f) => decodeFrame(f).type !== 'info'), ...after])
    h = await startHarness({ relayUrl: relay.url })
  })
  afterAll(async () => {
    await h?.stop()
    await relay?.close()
  })

  it('refuses a rev more than five minutes ahead and a repo that is not did:plc or did:web', async () => {
    const health = await waitFor(async () => {
      const res = await h.get<Health>('_health')
      return res.body.cursor === lastSeq ? res.body : undefined
    }, 'the cursor to reach the last frame')
    expect(health.ingest.rejected['future-rev']).toBe(1)
    expect(health.ingest.rejected['unsupported-did']).toBe(1)
    const rejected = await h.service.pool.query('SELECT reason FROM rejection WHERE uri = $1 ORDER BY reason', [invite.uri])
    expect(rejected.rows.map((r: { reason: string }) => r.reason)).toEqual(['future-rev'])
    await views(h).waitForState(bob, invite.uri, 'accepted')
  })

  it('resyncs on #account desynchronized or throttled instead of hiding the account', async () => {
    await waitFor(async () => ((await h.get<Health>('_health')).body.cursor === lastSeq ? true : undefined), 'the cursor to reach the last frame')
    const v = views(h)
    expect((await v.collaborators(node.uri)).map((c) => c.did)).toEqual([bob.did])
    expect((await v.find(bob, invite.uri))?.state).toBe('accepted')
    const accounts = await h.service.pool.query('SELECT did FROM account WHERE did = ANY($1)', [[alice.did, bob.did]])
    expect(accounts.rows).toEqual([])
    const syncs = await h.service.pool.query('SELECT did, reason FROM repo_sync WHERE did = ANY($1) ORDER BY did', [[alice.did, bob.did]])
    const reasons = Object.fromEntries(syncs.rows.map((r: { did: string; reason: string }) => [r.did, r.reason]))
    expect(reasons[bob.did]).toContain('desynchronized')
    expect(reasons[alice.did]).toContain('throttled')
  })
})

describe('a replay after tombstones are purged', () => {
  it('does not revive a deleted record: ops at or below the repo rev held are ignored', async () => {
    const h = await startHarness()
    try {
      const v = views(h)
      const [alice, bob] = await Promise.all([createUser('purga'), createUser('purgb')])
      const node = await alice.node()
      const invite = await alice.invite(node, bob)
      await v.waitForState(bob, invite.uri, 'pending')
      await alice.delete(invite.uri)
      await v.waitForState(bob, invite.uri, 'rejected')
      await v.barrier(alice, bob)
      // Retention of zero days: the invite's tombstone and its rev tombstone go.
      const purged = await runUpkeep(h.service.pool, 0)
      expect(purged.tombstones).toBeGreaterThanOrEqual(1)
      expect((await h.service.pool.query('SELECT 1 FROM record_rev WHERE uri = $1', [invite.uri])).rowCount).toBe(0)
      await h.service.stop()
      await rewindCursor(h)
      await h.restart()
      await v.barrier(alice, bob)
      expect(await v.find(bob, invite.uri)).toBeUndefined()
      expect((await h.service.pool.query('SELECT 1 FROM invite WHERE uri = $1', [invite.uri])).rowCount).toBe(0)
    } finally {
      await h.stop()
    }
  })
})
