import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { normaliseRelayUrl } from '../src/config.ts'
import { createUser, pdsUrl, startHarness, waitFor, type Harness, type Ref, type User } from './support/harness.ts'
import { markSeq } from './support/replay-relay.ts'
import { deletes, startTamperRelay, type TamperRelay } from './support/tamper-relay.ts'
import { views } from './support/views.ts'

/**
 * A relay that lies about one commit of a tracked repo (the invitee's, which holds an
 * acceptance): it hides the acceptance's delete from the commit's ops, or drops the commit and
 * makes the next one look like it continues the last one delivered, or drops it honestly. The
 * PDS no longer holds the acceptance, so a service that validates the chain (sync 1.1: the ops
 * inverted on the CAR's blocks must give `prevData`, which must be the root we hold) resyncs the
 * repo from its PDS and stops listing the collaboration.
 */

const ws = () => normaliseRelayUrl(pdsUrl())
/** How long the service has to see the break and resync the repo. */
const DETECT_MS = 15_000

let scribe: User
let mark = 0
let relay: TamperRelay
let h: Harness
let v: ReturnType<typeof views>

beforeAll(async () => {
  scribe = await createUser('scribe')
})

beforeEach(async () => {
  // "Now" on the PDS's firehose: the relay follows it from here, and the service starts here.
  mark = await markSeq(ws(), scribe, mark)
  relay = await startTamperRelay(ws(), mark)
  h = await startHarness({ relayUrl: relay.url, startCursor: mark })
  v = views(h)
})

afterEach(async () => {
  await h?.stop()
  await relay?.close()
})

interface Health {
  cursor: number | null
  ingest: { resyncsRequested?: number } | null
  backfill?: { resync: { pending: number; failed: number; desynchronized: number } }
}
const resyncsRequested = async (): Promise<number> => (await h.get<Health>('_health')).body.ingest?.resyncsRequested ?? 0

/** An inviter's subject and invite, accepted by the invitee, as listed by the service. */
const collaboration = async () => {
  const [inviter, invitee] = await Promise.all([createUser('inviter'), createUser('invitee')])
  const subject = await inviter.node('shared work')
  const invite = await inviter.invite(subject, invitee)
  const acceptance = await invitee.accept(invite, subject)
  await waitFor(
    async () => (await v.collaborators(subject.uri)).some((c) => c.did === invitee.did && c.acceptanceUri === acceptance.uri),
    'the collaborator to be listed',
  )
  await v.waitForState(invitee, invite.uri, 'accepted')
  return { inviter, invitee, subject, invite, acceptance }
}

const pathOf = (ref: Ref): string => ref.uri.split('/').slice(3).join('/')

/**
 * The withdrawal must win: the collaborator leaves listCollaborators, the invite is pending
 * again, and the service reports the chain break it resynced from.
 */
const expectWithdrawn = async (c: Awaited<ReturnType<typeof collaboration>>, resyncsBefore: number) => {
  const started = Date.now()
  await waitFor(
    async () => !(await v.collaborators(c.subject.uri)).some((x) => x.did === c.invitee.did),
    `the invitee to leave listCollaborators of ${c.subject.uri} (the PDS no longer holds the acceptance)`,
    DETECT_MS,
  )
  console.log(`chain forgery: withdrawal listed ${Date.now() - started} ms after the tampered commit`)
  await v.waitForState(c.invitee, c.invite.uri, 'pending')
  const resyncs = await waitFor(async () => {
    const n = await resyncsRequested()
    return n > resyncsBefore ? n : undefined
  }, '_health ingest.resyncsRequested to count the chain break')
  expect(resyncs).toBeGreaterThan(resyncsBefore)
}

describe('a relay that alters a tracked repo’s commits', () => {
  it('control: the same withdrawal through an honest relay is applied from the stream, with no resync', async () => {
    const c = await collaboration()
    const before = await resyncsRequested()
    await c.invitee.delete(c.acceptance.uri)
    await c.invitee.create('app.bsky.feed.like', { subject: c.subject, createdAt: new Date().toISOString() })
    await waitFor(async () => (await v.collaborators(c.subject.uri)).length === 0, 'the withdrawal to be listed')
    // Everything above is committed (with the status) once a later invite is listed.
    await v.barrier(c.inviter, c.invitee)
    expect(await resyncsRequested(), 'an honest chain was taken for a break').toBe(before)
    expect(relay.stats.altered + relay.stats.dropped).toBe(0)
  })

  it('hides the only op of a commit (an acceptance delete, blocks kept): the repo is resynced from its PDS', async () => {
    const c = await collaboration()
    const before = await resyncsRequested()
    const path = pathOf(c.acceptance)
    const applied = relay.tamper(c.invitee.did, deletes(path), { kind: 'strip-op', path })
    await c.invitee.delete(c.acceptance.uri)
    const report = await applied
    expect(report.kind).toBe('strip-op')
    await expectWithdrawn(c, before)
  })

  it('hides one op of two (the acceptance delete beside a like): the repo is resynced from its PDS', async () => {
    const c = await collaboration()
    const before = await resyncsRequested()
    const path = pathOf(c.acceptance)
    const applied = relay.tamper(c.invitee.did, deletes(path), { kind: 'strip-op', path })
    await c.invitee.agent.com.atproto.repo.applyWrites({
      repo: c.invitee.did,
      validate: false,
      writes: [
        { $type: 'com.atproto.repo.applyWrites#delete', collection: path.split('/')[0] as string, rkey: path.split('/')[1] as string },
        {
          $type: 'com.atproto.repo.applyWrites#create',
          collection: 'app.bsky.feed.like',
          value: { $type: 'app.bsky.feed.like', subject: c.subject, createdAt: new Date().toISOString() },
        },
      ],
    })
    await applied
    await expectWithdrawn(c, before)
  })

  it('drops the delete commit and splices the next commit onto the last one delivered (since and prevData rewritten)', async () => {
    const c = await collaboration()
    const before = await resyncsRequested()
    const path = pathOf(c.acceptance)
    const applied = relay.tamper(c.invitee.did, deletes(path), { kind: 'drop-and-splice' })
    await c.invitee.delete(c.acceptance.uri)
    // The next commit of the invitee: it is made to claim the acceptance's commit as its parent.
    await c.invitee.create('app.bsky.feed.like', { subject: c.subject, createdAt: new Date().toISOString() })
    const report = await applied
    expect(report.spliced).toBeDefined()
    // The splice really hides the gap: since and prevData now name the acceptance's commit.
    expect(report.spliced?.since).not.toBe(report.spliced?.originalSince)
    expect(report.spliced?.prevData).not.toBe(report.spliced?.originalPrevData)
    await expectWithdrawn(c, before)
  })

  it('drops the delete commit honestly (the next commit names it as since): the gap is seen and the repo resynced', async () => {
    const c = await collaboration()
    const before = await resyncsRequested()
    const path = pathOf(c.acceptance)
    const applied = relay.tamper(c.invitee.did, deletes(path), { kind: 'drop' })
    await c.invitee.delete(c.acceptance.uri)
    await c.invitee.create('app.bsky.feed.post', { text: 'after the gap', createdAt: new Date().toISOString() })
    await applied
    await expectWithdrawn(c, before)
  })
})
