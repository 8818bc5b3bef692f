import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { INVITE, createUser, startHarness, waitFor, type Harness, type User } from './support/harness.ts'
import { views } from './support/views.ts'

let h: Harness
let v: ReturnType<typeof views>
let alice: User
let bob: User
let carol: User

beforeAll(async () => {
  h = await startHarness()
  v = views(h)
  ;[alice, bob, carol] = await Promise.all([createUser('alice'), createUser('bob'), createUser('carol')])
})
afterAll(async () => {
  await h?.stop()
})

describe('invite lifecycle through the local PDS firehose', () => {
  it('an invite is pending, then accepted with a collaborator, and the acceptance can be withdrawn', async () => {
    const node = await alice.node()
    const invite = await alice.invite(node, bob, { message: 'join me' })
    const pending = await v.waitForState(bob, invite.uri, 'pending')
    expect(pending).toMatchObject({
      inviter: alice.did,
      invitee: bob.did,
      subjectUri: node.uri,
      subjectCollection: 'pub.chive.graph.node',
      role: 'collaborator',
      message: 'join me',
    })
    expect(pending.acceptanceUri).toBeUndefined()
    expect(await v.collaborators(node.uri)).toEqual([])

    const acceptance = await bob.accept(invite, node)
    const accepted = await v.waitForState(bob, invite.uri, 'accepted')
    expect(accepted.acceptanceUri).toBe(acceptance.uri)
    expect(Date.parse(accepted.acceptedAt ?? '')).not.toBeNaN()
    expect((await v.inbox(bob, 'pending')).invites.map((i) => i.uri)).not.toContain(invite.uri)
    expect(await v.collaborators(node.uri)).toEqual([
      expect.objectContaining({ did: bob.did, inviteUri: invite.uri, acceptanceUri: acceptance.uri, role: 'collaborator' }),
    ])

    await bob.delete(acceptance.uri)
    await v.waitForState(bob, invite.uri, 'pending')
    expect(await v.collaborators(node.uri)).toEqual([])
  })

  it("counts Chive's empty-CID acceptance, matched on URI alone", async () => {
    const node = await alice.node()
    const invite = await alice.invite(node, bob)
    await bob.accept({ uri: invite.uri, cid: '' }, { uri: node.uri, cid: '' })
    await v.waitForState(bob, invite.uri, 'accepted')
    const rows = await h.service.pool.query('SELECT lenient, invite_cid FROM acceptance WHERE invite_uri = $1', [invite.uri])
    expect(rows.rows).toEqual([{ lenient: true, invite_cid: null }])
    expect((await v.collaborators(node.uri)).map((c) => c.did)).toEqual([bob.did])
  })

  it('an invite deleted by the inviter becomes rejected and ends the collaboration', async () => {
    const node = await alice.node()
    const invite = await alice.invite(node, bob, { message: 'secret words' })
    await bob.accept(invite, node)
    await v.waitForState(bob, invite.uri, 'accepted')
    await alice.delete(invite.uri)
    const rejected = await v.waitForState(bob, invite.uri, 'rejected')
    expect(rejected.message).toBeUndefined()
    expect(rejected.acceptanceUri).toBeUndefined()
    expect(await v.collaborators(node.uri)).toEqual([])
  })

  it('an updated invite shows its new content and keeps an acceptance of its earlier version', async () => {
    const node = await alice.node()
    const invite = await alice.invite(node, bob, { role: 'viewer' })
    await bob.accept(invite, node)
    await v.waitForState(bob, invite.uri, 'accepted')
    const updated = await alice.put(invite.uri, {
      subject: node,
      invitee: bob.did,
      role: 'editor',
      message: 'promoted',
      createdAt: new Date().toISOString(),
    })
    expect(updated.cid).not.toBe(invite.cid)
    const view = await waitFor(async () => {
      const found = await v.find(bob, invite.uri)
      return found?.role === 'editor' ? found : undefined
    }, 'the update')
    expect(view).toMatchObject({ state: 'accepted', message: 'promoted' })
    expect((await v.collaborators(node.uri))[0]).toMatchObject({ did: bob.did, role: 'editor' })
  })

  it('an invite expires at its expiresAt and stops granting collaboration', async () => {
    const node = await alice.node()
    const invite = await alice.invite(node, bob, { expiresAt: new Date(Date.now() + 2500).toISOString() })
    await bob.accept(invite, node)
    const accepted = await v.waitForState(bob, invite.uri, 'accepted')
    expect(accepted.expiresAt).toBeDefined()
    expect(await v.collaborators(node.uri)).toHaveLength(1)
    await v.waitForState(bob, invite.uri, 'expired')
    expect(await v.collaborators(node.uri)).toEqual([])
  })

  it('ignores an acceptance written by someone other than the invitee', async () => {
    const node = await alice.node()
    const invite = await alice.invite(node, bob)
    await carol.accept(invite, node)
    await v.barrier(alice, bob)
    expect((await v.find(bob, invite.uri))?.state).toBe('pending')
    expect(await v.collaborators(node.uri)).toEqual([])
  })

  it('ignores an acceptance whose subject differs from the invite subject', async () => {
    const node = await alice.node()
    const other = await alice.node('another record')
    const invite = await alice.invite(node, bob)
    await bob.accept(invite, other)
    await v.barrier(alice, bob)
    expect((await v.find(bob, invite.uri))?.state).toBe('pending')
    expect(await v.collaborators(node.uri)).toEqual([])
    expect(await v.collaborators(other.uri)).toEqual([])
  })

  it('counts an acceptance that arrives before its invite once the invite arrives', async () => {
    const node = await alice.node()
    const rkey = `early${Date.now().toString(36)}`
    const inviteUri = `at://${alice.did}/${INVITE}/${rkey}`
    await bob.accept({ uri: inviteUri, cid: '' }, { uri: node.uri, cid: '' })
    await alice.create(INVITE, { subject: node, invitee: bob.did, createdAt: new Date().toISOString() }, rkey)
    await v.waitForState(bob, inviteUri, 'accepted')
    expect((await v.collaborators(node.uri)).map((c) => c.inviteUri)).toEqual([inviteUri])
  })

  it('does not list an acceptance naming a CID the invite never had', async () => {
    const node = await alice.node()
    const invite = await alice.invite(node, bob)
    const bogus = { uri: invite.uri, cid: node.cid }
    await bob.accept(bogus, node)
    await v.barrier(alice, bob)
    expect((await v.find(bob, invite.uri))?.state).toBe('pending')
  })
})
