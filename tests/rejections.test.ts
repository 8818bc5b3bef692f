import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ACCEPTANCE, INVITE, createUser, startHarness, waitFor, type Harness, type User } from './support/harness.ts'
import { views } from './support/views.ts'

let h: Harness
let v: ReturnType<typeof views>
let alice: User
let bob: User
let mallory: User

beforeAll(async () => {
  h = await startHarness()
  v = views(h)
  ;[alice, bob, mallory] = await Promise.all([createUser('alice'), createUser('bob'), createUser('mallory')])
})
afterAll(async () => {
  await h?.stop()
})

const rejectionsFor = async (uri: string): Promise<{ reason: string; detail: string | null; record: unknown }[]> => {
  const res = await h.service.pool.query('SELECT reason, detail, record FROM rejection WHERE uri = $1 ORDER BY id', [uri])
  return res.rows
}

const barrier = () => v.barrier(alice, bob)

describe('records that must never be served', () => {
  it('rejects an invite onto someone else’s record and never lets it grant collaboration', async () => {
    const victimNode = await alice.node('not mallory’s')
    const spoof = await mallory.invite(victimNode, bob)
    await bob.accept(spoof, victimNode)
    await barrier()
    expect(await v.find(bob, spoof.uri)).toBeUndefined()
    expect(await v.collaborators(victimNode.uri)).toEqual([])
    expect((await rejectionsFor(spoof.uri)).map((r) => r.reason)).toEqual(['subject-not-owned'])
  })

  it('rejects invites to oneself and invites that expire before they are created', async () => {
    const node = await alice.node()
    const self = await alice.invite(node, alice)
    const now = Date.now()
    const backwards = await alice.invite(node, bob, {
      createdAt: new Date(now).toISOString(),
      expiresAt: new Date(now - 1000).toISOString(),
    })
    await barrier()
    expect(await v.find(bob, backwards.uri)).toBeUndefined()
    expect((await rejectionsFor(self.uri)).map((r) => r.reason)).toEqual(['self-invite'])
    expect((await rejectionsFor(backwards.uri)).map((r) => r.reason)).toEqual(['expires-before-created'])
  })

  it('rejects records that fail their lexicon, keeping the record for moderators', async () => {
    const node = await alice.node()
    const noInvitee = await alice.create(INVITE, { subject: node, createdAt: new Date().toISOString() })
    const badDid = await alice.create(INVITE, { subject: node, invitee: 'not-a-did', createdAt: new Date().toISOString() })
    const longMessage = await alice.invite(node, bob, { message: 'x'.repeat(501) })
    const badDate = await alice.invite(node, bob, { createdAt: 'yesterday' })
    const badAcceptance = await bob.create(ACCEPTANCE, { invite: 'nope', subject: node, createdAt: new Date().toISOString() })
    await barrier()
    for (const ref of [noInvitee, badDid, longMessage, badDate]) {
      expect(await v.find(bob, ref.uri)).toBeUndefined()
    }
    const rejected = await rejectionsFor(noInvitee.uri)
    expect(rejected).toHaveLength(1)
    expect(rejected[0]?.reason).toBe('invalid-record')
    expect(rejected[0]?.detail).toMatch(/invitee/)
    expect(rejected[0]?.record).toMatchObject({ subject: { uri: node.uri } })
    for (const ref of [badDid, longMessage, badDate, badAcceptance]) {
      expect((await rejectionsFor(ref.uri)).map((r) => r.reason)).toEqual(['invalid-record'])
    }
  })

  it('an update that makes a valid invite invalid withdraws it', async () => {
    const node = await alice.node()
    const invite = await alice.invite(node, bob)
    await v.waitForState(bob, invite.uri, 'pending')
    await alice.put(invite.uri, { subject: node, invitee: 'did:bad', createdAt: new Date().toISOString() })
    await waitFor(async () => (await v.find(bob, invite.uri)) === undefined, 'the invalid update to withdraw the invite')
    expect((await rejectionsFor(invite.uri)).map((r) => r.reason)).toEqual(['invalid-record'])
  })

  it('counts rejections by reason in the health endpoint', async () => {
    const res = await h.get<{ ingest: { rejected: Record<string, number> } }>('_health')
    expect(res.status).toBe(200)
    await waitFor(async () => {
      const body = (await h.get<{ ingest: { rejected: Record<string, number> } }>('_health')).body
      return (body.ingest.rejected['invalid-record'] ?? 0) >= 6 && (body.ingest.rejected['subject-not-owned'] ?? 0) >= 1
    }, 'rejection counts in /xrpc/_health')
  })
})
