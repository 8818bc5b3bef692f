import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { adminAgent, createUser, startHarness, waitFor, type Harness, type User } from './support/harness.ts'
import { views } from './support/views.ts'

let h: Harness
let v: ReturnType<typeof views>

beforeAll(async () => {
  h = await startHarness()
  v = views(h)
})
afterAll(async () => {
  await h?.stop()
})

const takedown = (did: string, applied: boolean) =>
  adminAgent().com.atproto.admin.updateSubjectStatus({
    subject: { $type: 'com.atproto.admin.defs#repoRef', did },
    takedown: { applied, ref: applied ? 'test-takedown' : undefined },
  })

/** Waits until the indexer has stored the account's status from the firehose. */
const waitForAccount = (did: string, active: boolean, status: string | null) =>
  waitFor(async () => {
    const res = await h.service.pool.query('SELECT active, status FROM account WHERE did = $1', [did])
    const row = res.rows[0] as { active: boolean; status: string | null } | undefined
    // Active accounts have no row: only inactive ones are stored.
    return active ? row === undefined : row?.active === false && row.status === status
  }, `${did} to be ${status ?? 'active'}`)

describe('#account events', () => {
  it('a takedown of the inviter hides their invites until they are reinstated', async () => {
    const [alice, bob] = await Promise.all([createUser('alice'), createUser('bob')])
    const node = await alice.node()
    const invite = await alice.invite(node, bob)
    await bob.accept(invite, node)
    await v.waitForState(bob, invite.uri, 'accepted')

    await takedown(alice.did, true)
    await waitForAccount(alice.did, false, 'takendown')
    expect(await v.find(bob, invite.uri)).toBeUndefined()
    expect(await v.collaborators(node.uri)).toEqual([])

    await takedown(alice.did, false)
    await waitForAccount(alice.did, true, null)
    await v.waitForState(bob, invite.uri, 'accepted')
    expect((await v.collaborators(node.uri)).map((c) => c.did)).toEqual([bob.did])
  })

  it('a deactivated invitee’s acceptance stops counting until reactivation', async () => {
    const [alice, bob] = await Promise.all([createUser('alice'), createUser('bob')])
    const node = await alice.node()
    const invite = await alice.invite(node, bob)
    await bob.accept(invite, node)
    await v.waitForState(bob, invite.uri, 'accepted')

    await bob.agent.com.atproto.server.deactivateAccount({})
    await waitForAccount(bob.did, false, 'deactivated')
    expect(await v.collaborators(node.uri)).toEqual([])
    const asInviter = await v.list(alice, { inviter: alice.did })
    expect(asInviter.invites.find((i) => i.uri === invite.uri)?.state).toBe('pending')

    await bob.agent.com.atproto.server.activateAccount()
    await waitForAccount(bob.did, true, null)
    await v.waitForState(bob, invite.uri, 'accepted')
    expect((await v.collaborators(node.uri)).map((c) => c.did)).toEqual([bob.did])
  })

  it('a deleted account’s invites and acceptances are removed', async () => {
    const [alice, bob, carol] = await Promise.all([createUser('alice'), createUser('bob'), createUser('carol')])
    const node = await alice.node()
    const toBob = await alice.invite(node, bob)
    const fromCarol = await carol.invite(await carol.node(), bob)
    await bob.accept(toBob, node)
    await v.waitForState(bob, toBob.uri, 'accepted')
    await v.waitForState(bob, fromCarol.uri, 'pending')

    await adminAgent().com.atproto.admin.deleteAccount({ did: alice.did })
    await waitForAccount(alice.did, false, 'deleted')
    expect(await v.find(bob, toBob.uri)).toBeUndefined()
    expect((await v.find(bob, fromCarol.uri))?.state).toBe('pending')
    const left = await h.service.pool.query('SELECT count(*)::int AS n FROM invite WHERE inviter = $1', [alice.did])
    expect(left.rows[0]).toEqual({ n: 0 })
  })
})
