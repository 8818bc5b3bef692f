import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startFaultRelay, type FaultRelay } from './support/fault-relay.ts'
import { createUser, LIST_INVITES, startHarness, type Harness, type User } from './support/harness.ts'

const INDEX_RECORD = 'pub.chive.sync.indexRecord'
const DELETE_RECORD = 'pub.chive.sync.deleteRecord'

/** pub.chive.sync.* against a relay that never delivers: whatever is listed came from the call. */
describe('pub.chive.sync.indexRecord and deleteRecord', () => {
  let relay: FaultRelay
  let h: Harness
  let alice: User
  let bob: User
  let eve: User

  const post = async (nsid: string, body: unknown, token?: string) => {
    const res = await fetch(new URL(`/xrpc/${nsid}`, h.service.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    })
    return { status: res.status, body: (await res.json()) as Record<string, unknown> }
  }
  const index = async (user: User, uri: string) => post(INDEX_RECORD, { uri }, await user.token(INDEX_RECORD))
  const drop = async (user: User, uri: string) => post(DELETE_RECORD, { uri }, await user.token(DELETE_RECORD))
  const invitesOf = async (invitee: User) => {
    const res = await h.get<{ invites: { uri: string; state: string }[] }>(LIST_INVITES, { invitee: invitee.did }, await invitee.token(LIST_INVITES))
    expect(res.status).toBe(200)
    return res.body.invites
  }

  beforeAll(async () => {
    relay = await startFaultRelay([])
    h = await startHarness({ relayUrl: relay.url })
    ;[alice, bob, eve] = await Promise.all([createUser('sya'), createUser('syb'), createUser('sye')])
  })
  afterAll(async () => {
    await h?.stop()
    await relay?.close()
  })

  it('indexes an invite and its acceptance at once, as proven by their hosts', async () => {
    const node = await alice.node()
    const invite = await alice.invite(node, bob)
    expect(await invitesOf(bob)).toEqual([])

    const indexed = await index(alice, invite.uri)
    expect(indexed).toEqual({ status: 200, body: { uri: invite.uri, indexed: true, cid: invite.cid } })
    expect((await invitesOf(bob)).map((i) => [i.uri, i.state])).toEqual([[invite.uri, 'pending']])

    const acceptance = await bob.accept(invite, node)
    expect((await index(bob, acceptance.uri)).body).toEqual({ uri: acceptance.uri, indexed: true, cid: acceptance.cid })
    expect((await invitesOf(bob)).map((i) => [i.uri, i.state])).toEqual([[invite.uri, 'accepted']])
  })

  it("refuses a stranger's call (403) and a call without a token (401)", async () => {
    const invite = await alice.invite(await alice.node(), bob)
    const stranger = await index(eve, invite.uri)
    expect([stranger.status, stranger.body.error]).toEqual([403, 'Forbidden'])
    const anonymous = await post(INDEX_RECORD, { uri: invite.uri })
    expect([anonymous.status, anonymous.body.error]).toEqual([401, 'AuthenticationRequired'])
    const refusedDelete = await drop(eve, invite.uri)
    expect(refusedDelete.status).toBe(403)
  })

  it('answers NotFound for a record its repo does not hold', async () => {
    const res = await index(alice, `at://${alice.did}/pub.chive.collaboration.invite/3zzzzzzzzzzzz`)
    expect([res.status, res.body.error]).toEqual([404, 'NotFound'])
  })

  it('refuses a collection outside pub.chive.* (400)', async () => {
    const res = await index(alice, `at://${alice.did}/app.bsky.feed.post/3zzzzzzzzzzzz`)
    expect([res.status, res.body.error]).toEqual([400, 'InvalidRequest'])
  })

  it('answers InvalidRequest, never 500, for a body that names no record', async () => {
    const token = await alice.token(INDEX_RECORD)
    for (const body of [{}, { uri: 42 }, { uri: 'not a uri' }, { uri: 'at://' }, { uri: `at://${alice.did}` }, { uri: 'at://%%%/pub.chive.x/y' }]) {
      const res = await post(INDEX_RECORD, body, token)
      expect([res.status, res.body.error], JSON.stringify(body)).toEqual([400, 'InvalidRequest'])
    }
  })

  it('deletes only what its repo proves deleted', async () => {
    const invite = await alice.invite(await alice.node(), bob)
    expect((await index(alice, invite.uri)).body.indexed).toBe(true)

    const kept = await drop(alice, invite.uri)
    expect(kept.status).toBe(200)
    expect(kept.body.deleted).toBe(false)
    expect(kept.body.error).toMatch(/still exists/)
    expect((await invitesOf(bob)).map((i) => i.uri)).toContain(invite.uri)

    await alice.delete(invite.uri)
    expect((await drop(alice, invite.uri)).body).toEqual({ uri: invite.uri, deleted: true })
    const after = await invitesOf(bob)
    expect(after.filter((i) => i.uri === invite.uri && i.state !== 'rejected')).toEqual([])
  })

  it("lets a moderator ask for another's record, and answers UpstreamFailure when no host can prove it", async () => {
    const invite = await alice.invite(await alice.node(), bob)
    expect((await index(eve, invite.uri)).status).toBe(403)
    // The configuration's list, read on each call (the harness starts before the users exist).
    h.config.admin.moderatorDids.push(eve.did)
    try {
      expect((await index(eve, invite.uri)).body).toEqual({ uri: invite.uri, indexed: true, cid: invite.cid })
      const nowhere = await index(eve, 'at://did:plc:aaaaaaaaaaaaaaaaaaaaaaaa/pub.chive.collaboration.invite/3zzzzzzzzzzzz')
      expect([nowhere.status, nowhere.body.error]).toEqual([502, 'UpstreamFailure'])
    } finally {
      h.config.admin.moderatorDids.splice(h.config.admin.moderatorDids.indexOf(eve.did), 1)
    }
  })
})
