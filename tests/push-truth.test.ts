import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SUBSCRIBE_INVITES } from '../src/push/subscription.ts'
import { adminAgent, createUser, lexicons, startHarness, waitFor, type Harness, type Ref, type User } from './support/harness.ts'
import { PushClient, type Change } from './support/push-client.ts'
import { views } from './support/views.ts'
import { startReceiver } from './support/webhook-receiver.ts'
import { runBackfillCli } from './support/backfill-cli.ts'

const SECRET = 'a webhook secret of some length'

/**
 * A change is pushed when, and only when, what listInvites serves of an invite changes: to the
 * parties' subscriptions and to every webhook.
 */
describe('push follows what listInvites serves', () => {
  let h: Harness
  let v: ReturnType<typeof views>
  let receiver: Awaited<ReturnType<typeof startReceiver>>
  const clients: PushClient[] = []

  beforeAll(async () => {
    receiver = await startReceiver(SECRET)
    h = await startHarness({ webhooks: { urls: [receiver.url], secret: SECRET, timeoutMs: 2000, backoffBaseMs: 20, maxBackoffMs: 100 } })
    v = views(h)
  })
  afterAll(async () => {
    for (const c of clients) c.ws.terminate()
    await h?.stop()
    await receiver?.close()
  })

  const connect = async (user: User) => {
    const c = new PushClient(h.service.url, { token: await user.token(SUBSCRIBE_INVITES) })
    clients.push(c)
    await c.opened
    return c
  }
  const delivered = (uri: string): Change[] =>
    receiver.deliveries.filter((d) => d.status === 200).map((d) => JSON.parse(d.body) as Change).filter((c) => c.invite.uri === uri)
  const kindsOf = (changes: Change[], uri: string) => changes.filter((c) => c.invite.uri === uri).map((c) => c.kind)
  const kindOf = (uri: string, kind: string) => (c: Change) => c.invite.uri === uri && c.kind === kind

  /** A party's invite, proven, with its `created` received by both parties and the webhook. */
  const served = async (inviter: User, invitee: User, watchers: PushClient[]): Promise<{ node: Ref; invite: Ref }> => {
    const node = await inviter.node()
    const invite = await inviter.invite(node, invitee, { message: 'join me' })
    for (const w of watchers) await w.waitForChange(kindOf(invite.uri, 'created'), 'created')
    await waitFor(async () => delivered(invite.uri).length > 0, 'the webhook delivery of created')
    return { node, invite }
  }

  /**
   * Everything written before has been indexed, and every change it made has reached the
   * subscribers and the webhook: a later change of the same feed was received by all of them.
   */
  const settled = async (inviter: User, invitee: User, watchers: PushClient[]) => {
    await v.barrier(inviter, invitee)
    const { invite } = await served(inviter, invitee, watchers)
    return invite
  }

  it("a third party's acceptance of someone else's invite, and its deletion, push nothing", async () => {
    const [alice, bob, carol] = await Promise.all([createUser('ta'), createUser('tb'), createUser('tc')])
    const [asAlice, asBob] = [await connect(alice), await connect(bob)]
    const { node, invite } = await served(alice, bob, [asAlice, asBob])
    const forged = await carol.accept(invite, node)
    await carol.delete(forged.uri)
    await settled(alice, bob, [asAlice, asBob])
    expect((await v.find(bob, invite.uri))?.state).toBe('pending')
    for (const c of [asAlice, asBob]) expect(kindsOf(c.changes, invite.uri)).toEqual(['created'])
    expect(delivered(invite.uri).map((c) => c.kind)).toEqual(['created'])
  })

  it('a backfill over unchanged records pushes nothing', async () => {
    const [alice, bob] = await Promise.all([createUser('ba'), createUser('bb')])
    const [asAlice, asBob] = [await connect(alice), await connect(bob)]
    const { node, invite } = await served(alice, bob, [asAlice, asBob])
    await bob.accept(invite, node)
    for (const c of [asAlice, asBob]) await c.waitForChange(kindOf(invite.uri, 'accepted'), 'accepted')
    // Later commits move both repos past the records' revs: the snapshot's versions are newer.
    await alice.node()
    await bob.node()
    await settled(alice, bob, [asAlice, asBob])
    for (const did of [alice.did, bob.did]) {
      const run = await runBackfillCli(h, ['--did', did])
      expect(run.code, run.output).toBe(0)
    }
    await settled(alice, bob, [asAlice, asBob])
    for (const c of [asAlice, asBob]) expect(kindsOf(c.changes, invite.uri)).toEqual(['created', 'accepted'])
    expect(delivered(invite.uri).map((c) => c.kind)).toEqual(['created', 'accepted'])
  })

  it("an inviter's account deletion pushes the removal of each of their invites", async () => {
    const [dave, erin] = await Promise.all([createUser('da'), createUser('de')])
    const asErin = await connect(erin)
    const { invite } = await served(dave, erin, [asErin])
    await adminAgent().com.atproto.admin.deleteAccount({ did: dave.did })
    const removed = await asErin.waitForChange(kindOf(invite.uri, 'removed'), 'the removal')
    lexicons.assertValidXrpcMessage(SUBSCRIBE_INVITES, { $type: `${SUBSCRIBE_INVITES}#change`, ...removed })
    expect(removed.invite).toMatchObject({ uri: invite.uri, inviter: dave.did, invitee: erin.did, state: 'pending' })
    expect(removed.invite.message).toBeUndefined()
    expect(await v.find(erin, invite.uri)).toBeUndefined()
    await waitFor(async () => delivered(invite.uri).some((c) => c.kind === 'removed'), 'the webhook delivery of the removal')
  })

  it('an edit that makes a served invite invalid pushes its removal', async () => {
    const [alice, bob] = await Promise.all([createUser('ia'), createUser('ib')])
    const [asAlice, asBob] = [await connect(alice), await connect(bob)]
    const { node, invite } = await served(alice, bob, [asAlice, asBob])
    await alice.put(invite.uri, { subject: node, invitee: 'did:bad', createdAt: new Date().toISOString() })
    for (const c of [asAlice, asBob]) {
      const removed = await c.waitForChange(kindOf(invite.uri, 'removed'), 'the removal')
      // The last view served, not the invalid version.
      expect(removed.invite).toMatchObject({ invitee: bob.did, state: 'pending' })
      expect(removed.invite.message).toBeUndefined()
    }
    expect(await v.find(bob, invite.uri)).toBeUndefined()
    await waitFor(async () => delivered(invite.uri).some((c) => c.kind === 'removed'), 'the webhook delivery of the removal')
    // A valid version again: the invite is served again, and that is pushed.
    await alice.put(invite.uri, { subject: node, invitee: bob.did, createdAt: new Date().toISOString() })
    await waitFor(async () => kindsOf(asBob.changes, invite.uri).length === 3, 'served again')
    expect(kindsOf(asBob.changes, invite.uri)).toEqual(['created', 'removed', 'created'])
  })
})
