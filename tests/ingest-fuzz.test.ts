import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import type { Cid } from '@atproto/lex-data'
import { decodeFrame, FrameError, type CommitEvent } from '../src/sources/firehose-frame.ts'
import { normaliseRelayUrl } from '../src/config.ts'
import { createUser, pdsUrl, startHarness, waitFor, type Harness, type Ref, type User } from './support/harness.ts'
import { captureFrames, startReplayRelay, touches, type ReplayRelay } from './support/replay-relay.ts'
import { FORGERIES, REJECTION_REASON, type Forgery } from './support/forgeries.ts'
import { commitBody, frame } from './support/frames.ts'
import { fuzzSeed, mutantOf } from './support/mutations.ts'
import { views } from './support/views.ts'

const MALFORMED = 3000
const FORGED = 240

let relay: ReplayRelay
let h: Harness
let inviters: User[]
let invitees: User[]
let sent = 0
const expected = { malformed: {} as Record<string, number>, rejected: {} as Record<string, number> }
const bump = (counts: Record<string, number>, key: string) => {
  counts[key] = (counts[key] ?? 0) + 1
}

/** What the valid history should leave behind, to compare with the API after the fuzz. */
const story: { accepted: Ref[]; pending: Ref[]; deleted: Ref[]; edited: Ref[]; nodes: Ref[] } = {
  accepted: [],
  pending: [],
  deleted: [],
  edited: [],
  nodes: [],
}

const decodesToError = (bytes: Uint8Array): string | undefined => {
  try {
    decodeFrame(bytes)
    return undefined
  } catch (err) {
    if (err instanceof FrameError) return err.reason
    throw err
  }
}

/** A real history on the local PDS: invites, acceptances, an edit and a delete, by four accounts. */
const writeHistory = async (): Promise<Ref> => {
  const [a, b, c, d] = await Promise.all([createUser('fza'), createUser('fzb'), createUser('fzc'), createUser('fzd')])
  inviters = [a, b] as User[]
  invitees = [c, d] as User[]
  const [nodeA, nodeB] = await Promise.all([a.node('fuzzed a'), b.node('fuzzed b')])
  story.nodes.push(nodeA, nodeB)
  const [i1, i2, i3] = [await a.invite(nodeA, c), await a.invite(nodeA, d), await a.invite(nodeA, c, { message: 'first' })]
  const [i4, i5] = [await b.invite(nodeB, c), await b.invite(nodeB, d)]
  await c.accept(i1, nodeA)
  await c.accept(i4, nodeB)
  await d.accept(i5, nodeB)
  await a.delete(i2.uri)
  const edited = await a.put(i3.uri, { subject: nodeA, invitee: c.did, role: 'collaborator', message: 'edited', createdAt: new Date().toISOString() })
  story.accepted.push(i1, i4, i5)
  story.deleted.push(i2)
  story.edited.push(edited)
  const last = await b.invite(nodeB, c)
  story.pending.push(edited, last)
  return last
}

beforeAll(async () => {
  const last = await writeHistory()
  const dids = new Set([...inviters, ...invitees].map((u) => u.did))
  const captured = await captureFrames(normaliseRelayUrl(pdsUrl()), 0, touches(last.uri.split('/').slice(3).join('/')), 20_000)
  // Other test files write to the same PDS: keep this file's accounts only.
  const valid = captured.filter((f) => {
    const evt = decodeFrame(f)
    return ('repo' in evt && dids.has(evt.repo)) || ('did' in evt && dids.has(evt.did))
  })
  const commits = valid.map((f) => decodeFrame(f)).filter((e): e is CommitEvent => e.type === 'commit')
  const cids: Cid[] = commits.flatMap((e) => [e.commit, ...e.ops.flatMap((op) => (op.cid ? [op.cid] : []))])
  // One-op writes of Chive records: every forgery of one is rejected exactly once.
  const forgeable = commits.filter((e) => e.ops.length === 1 && e.ops[0]?.action !== 'delete' && e.ops[0]?.path.startsWith('pub.chive.'))
  expect(forgeable.length).toBeGreaterThan(10)

  const seed = fuzzSeed('ingest fuzz')
  const malformed = fc.sample(
    mutantOf(valid, cids).filter((m) => decodesToError(m.bytes) !== undefined),
    { seed, numRuns: MALFORMED },
  )
  for (const m of malformed) bump(expected.malformed, decodesToError(m.bytes) as string)

  const kinds = Object.keys(FORGERIES) as Forgery[]
  const plans = fc.sample(
    fc.record({ kind: fc.constantFrom(...kinds), base: fc.nat({ max: forgeable.length - 1 }), pick: fc.nat() }),
    { seed: seed + 1, numRuns: FORGED },
  )
  const forged: Uint8Array[] = []
  for (const p of plans) {
    const evt = forgeable[p.base] as CommitEvent
    const build: (evt: CommitEvent, seq: number, pick: number) => Promise<Uint8Array> = FORGERIES[p.kind]
    forged.push(await build(evt, evt.seq, p.pick))
    bump(expected.rejected, REJECTION_REASON[p.kind])
  }
  // Under the relay's 8 MiB frame limit, but far past any real commit.
  const big = forgeable[0] as CommitEvent
  forged.push(frame({ op: 1, t: '#commit' }, { ...commitBody(big), blocks: new Uint8Array(7 * 1024 * 1024).fill(7) }))
  bump(expected.rejected, 'bad-car')

  // Hostile frames go anywhere; the genuine ones keep their order.
  const hostile = [...malformed.map((m) => m.bytes), ...forged]
  const slots = fc.sample(fc.nat({ max: valid.length }), { seed: seed + 2, numRuns: hostile.length })
  const stream: Uint8Array[] = []
  for (let i = 0; i <= valid.length; i++) {
    hostile.forEach((bytes, j) => {
      if (slots[j] === i) stream.push(bytes)
    })
    if (i < valid.length) stream.push(valid[i] as Uint8Array)
  }
  sent = stream.length
  console.log(`ingest fuzz: ${valid.length} valid, ${malformed.length} malformed, ${forged.length} forged frames`, expected)
  relay = await startReplayRelay(stream)
  h = await startHarness({ relayUrl: relay.url })
}, 120_000)

afterAll(async () => {
  await h?.stop()
  await relay?.close()
})

interface Health {
  ingest: { framesReceived: number; malformed: Record<string, number>; rejected: Record<string, number> }
}

describe('hostile frames interleaved with a real history', () => {
  it('counts every rejection, crashes on none, and indexes every valid event', async () => {
    const health = await waitFor(async () => {
      const res = await h.get<Health>('_health')
      return res.body.ingest?.framesReceived === sent ? res.body : undefined
    }, `all ${sent} frames to be read`, 60_000)
    expect(health.ingest.malformed).toEqual(expected.malformed)
    // Repos are processed apart from the reading: wait until every event is done.
    const done = await waitFor(async () => {
      const status = h.service.indexer.snapshotStatus()
      return status.framesReceived === sent && status.queuedEvents === 0 ? { ingest: status } : undefined
    }, 'every event to be processed', 60_000)
    // A forgery of a tracked repo at or below the rev already held is ignored unread (a resync,
    // which the first forgery of a repo requests, moves the repo to its newest rev): each is
    // either rejected for its own reason or ignored, never applied (see the state checks below).
    let total = 0
    for (const [reason, n] of Object.entries(done.ingest.rejected)) {
      expect(expected.rejected[reason], reason).toBeGreaterThanOrEqual(n)
      total += n
    }
    const forgedTotal = Object.values(expected.rejected).reduce((a, b) => a + b, 0)
    expect(total).toBeGreaterThan(forgedTotal / 4)
    for (const reason of Object.keys(expected.rejected)) expect(done.ingest.rejected[reason] ?? 0, reason).toBeGreaterThan(0)

    const v = views(h)
    const [c, d] = invitees as [User, User]
    // Both pending invites are to c; the last one is the last frame of the history.
    for (const invite of story.pending) await v.waitForState(c, invite.uri, 'pending')
    const inboxC = await v.inbox(c)
    const inboxD = await v.inbox(d)
    const state = (uri: string) => [...inboxC.invites, ...inboxD.invites].find((i) => i.uri === uri)
    for (const invite of story.accepted) expect(state(invite.uri)?.state).toBe('accepted')
    // A forgery resyncs its repo from the PDS, which no longer holds the deleted invite; the
    // stream's replay of its creation is then older than the snapshot and ignored. Either way it
    // is never served as live: a tombstone ('rejected') or nothing.
    const deletedSeen = story.deleted.filter((invite) => state(invite.uri) !== undefined)
    for (const invite of deletedSeen) expect(state(invite.uri)?.state).toBe('rejected')
    expect(state(story.edited[0]?.uri as string)?.message).toBe('edited')
    expect(inboxC.invites).toHaveLength(4)
    expect(inboxD.invites).toHaveLength(2 - (story.deleted.length - deletedSeen.length))
    const [nodeA, nodeB] = story.nodes as [Ref, Ref]
    expect((await v.collaborators(nodeA.uri)).map((x) => x.did)).toEqual([c.did])
    expect((await v.collaborators(nodeB.uri)).map((x) => x.did).sort()).toEqual([c.did, d.did].sort())
  })
})
