import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  LIST_COLLABORATORS,
  LIST_INVITES,
  assertValidOutput,
  createUser,
  startHarness,
  waitFor,
  type Harness,
  type User,
} from './support/harness.ts'

interface InviteView {
  uri: string
  inviter: string
  invitee: string
  subjectUri: string
  state: string
  createdAt: string
  role?: string
  message?: string
  acceptanceUri?: string
  acceptedAt?: string
  expiresAt?: string
  subjectCollection?: string
}
interface ListInvites {
  invites: InviteView[]
  cursor?: string
  hasMore?: boolean
  total?: number
}
interface ListCollaborators {
  collaborators: { did: string; inviteUri: string; acceptanceUri: string; role?: string; acceptedAt: string }[]
}

let h: Harness
let alice: User
let bob: User

beforeAll(async () => {
  h = await startHarness()
  ;[alice, bob] = await Promise.all([createUser('alice'), createUser('bob')])
})
afterAll(async () => {
  await h?.stop()
})

const inbox = async (user: User, state = 'all') => {
  const res = await h.get<ListInvites>(LIST_INVITES, { invitee: user.did, state }, await user.token(LIST_INVITES))
  expect(res.status).toBe(200)
  assertValidOutput(LIST_INVITES, res.body)
  return res.body
}

const collaborators = async (subjectUri: string) => {
  const res = await h.get<ListCollaborators>(LIST_COLLABORATORS, { subjectUri })
  expect(res.status).toBe(200)
  assertValidOutput(LIST_COLLABORATORS, res.body)
  return res.body.collaborators
}

describe('invite lifecycle through the local PDS firehose', () => {
  it('an invite appears pending in the invitee inbox, then accepted with a collaborator', async () => {
    const node = await alice.node()
    const invite = await alice.invite(node, bob, { message: 'join me' })
    const pending = await waitFor(async () => {
      const body = await inbox(bob, 'pending')
      return body.invites.find((i) => i.uri === invite.uri)
    }, 'invite to be pending')
    expect(pending).toMatchObject({
      inviter: alice.did,
      invitee: bob.did,
      subjectUri: node.uri,
      subjectCollection: 'pub.chive.graph.node',
      state: 'pending',
      role: 'collaborator',
      message: 'join me',
    })
    expect(pending.acceptanceUri).toBeUndefined()

    const acceptance = await bob.accept(invite, node)
    const accepted = await waitFor(async () => {
      const body = await inbox(bob, 'accepted')
      return body.invites.find((i) => i.uri === invite.uri)
    }, 'invite to be accepted')
    expect(accepted.acceptanceUri).toBe(acceptance.uri)
    expect(accepted.acceptedAt).toBeDefined()
    expect((await inbox(bob, 'pending')).invites.find((i) => i.uri === invite.uri)).toBeUndefined()

    const collabs = await collaborators(node.uri)
    expect(collabs).toEqual([
      expect.objectContaining({ did: bob.did, inviteUri: invite.uri, acceptanceUri: acceptance.uri, role: 'collaborator' }),
    ])
  })
})
