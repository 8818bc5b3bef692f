import { expect } from 'vitest'
import { LIST_COLLABORATORS, LIST_INVITES, assertValidOutput, waitFor, type Harness, type User } from './harness.ts'

export interface InviteView {
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

export interface ListInvites {
  invites: InviteView[]
  cursor?: string
  hasMore?: boolean
  total?: number
}

export interface CollaboratorView {
  did: string
  inviteUri: string
  acceptanceUri: string
  role?: string
  acceptedAt: string
}

/** Typed, lexicon-checked calls to the two public queries. */
export const views = (h: Harness) => {
  const list = async (user: User, params: Record<string, string | number>): Promise<ListInvites> => {
    const res = await h.get<ListInvites>(LIST_INVITES, params, await user.token(LIST_INVITES))
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    assertValidOutput(LIST_INVITES, res.body)
    return res.body
  }
  const inbox = (user: User, state = 'all') => list(user, { invitee: user.did, state, limit: 100 })
  const collaborators = async (subjectUri: string): Promise<CollaboratorView[]> => {
    const res = await h.get<{ collaborators: CollaboratorView[] }>(LIST_COLLABORATORS, { subjectUri })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    assertValidOutput(LIST_COLLABORATORS, res.body)
    return res.body.collaborators
  }
  /** Waits until the invitee's inbox shows the invite in the given state. */
  const waitForState = (user: User, uri: string, state: string): Promise<InviteView> =>
    waitFor(async () => (await inbox(user)).invites.find((i) => i.uri === uri && i.state === state), `${uri} to be ${state}`)
  const find = async (user: User, uri: string): Promise<InviteView | undefined> =>
    (await inbox(user)).invites.find((i) => i.uri === uri)
  /**
   * Writes a fresh invite and waits for it, then for the committed cursor to pass every event
   * read by then: repos are processed independently, and the cursor is their low-water mark, so
   * everything written before the barrier has been processed and committed once it returns.
   */
  const barrier = async (inviter: User, invitee: User): Promise<void> => {
    const marker = await inviter.invite(await inviter.node(), invitee)
    await waitForState(invitee, marker.uri, 'pending')
    const read = h.service.indexer.snapshotStatus().lastSeq
    if (read === null) return
    await waitFor(async () => {
      const res = await h.get<{ cursor: number | null }>('_health')
      return (res.body.cursor ?? -1) >= read ? true : undefined
    }, 'the committed cursor to pass the barrier')
  }
  return { list, inbox, collaborators, waitForState, find, barrier }
}
