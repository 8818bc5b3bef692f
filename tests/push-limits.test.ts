import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SUBSCRIBE_INVITES } from '../src/push/subscription.ts'
import { LIST_INVITES, SERVICE_DID, createUser, startHarness, testConfig, waitFor, type Harness, type User } from './support/harness.ts'
import { PushClient } from './support/push-client.ts'
import { selfIssuer } from './support/self-issued.ts'
import { views } from './support/views.ts'

const DAY = 86_400

describe('what a stranger can hold open', () => {
  let h: Harness
  let issuer: Awaited<ReturnType<typeof selfIssuer>>
  let alice: User
  let bob: User
  const others: User[] = []
  const clients: PushClient[] = []
  // Each client from an address of its own, unless told: the per-address cap is tested apart.
  let nextAddress = 1
  const connect = (token: string, opts: ConstructorParameters<typeof PushClient>[1] = {}) => {
    const c = new PushClient(h.service.url, { token, forwardedFor: `198.51.100.${nextAddress++}`, ...opts })
    clients.push(c)
    return c
  }
  const subscribers = async () => (await h.get<{ push: { subscribers: number } }>('_health')).body.push.subscribers
  const closeAll = async () => {
    for (const c of clients.splice(0)) c.ws.terminate()
    await waitFor(async () => (await subscribers()) === 0, 'every subscription to end')
  }

  beforeAll(async () => {
    h = await startHarness({
      // Two API connections, and statements that are not cut short: a replay that held one
      // would hold it as long as the test does.
      api: { ...testConfig('x').api, poolMax: 2, statementTimeoutMs: 60_000, trustProxy: 1 },
      push: { ...testConfig('x').push, maxPerDid: 2, maxPerAddress: 3, maxTokenTtlSeconds: 3600 },
    })
    issuer = await selfIssuer()
    ;[alice, bob] = await Promise.all([createUser('pla'), createUser('plb')])
    others.push(...(await Promise.all([createUser('plc'), createUser('pld'), createUser('ple')])))
    const node = await alice.node()
    const invite = await alice.invite(node, bob)
    await views(h).waitForState(bob, invite.uri, 'pending')
  })
  afterAll(async () => {
    for (const c of clients) c.ws.terminate()
    await h?.stop()
    await issuer?.close()
  })

  it('refuses a token (or a #refresh) whose exp is further ahead than SUBSCRIBE_MAX_TOKEN_TTL_SECONDS', async () => {
    // The same self-signed DID is served with a short-lived token: the refusal is for the exp.
    const fine = connect(await issuer.token(SERVICE_DID, SUBSCRIBE_INVITES, 600))
    await fine.opened
    const month = connect(await issuer.token(SERVICE_DID, SUBSCRIBE_INVITES, 30 * DAY))
    expect(await month.waitForError()).toBe('AuthenticationRequired')
    expect((await month.closed).code).toBe(1008)
    fine.refresh(await issuer.token(SERVICE_DID, SUBSCRIBE_INVITES, 30 * DAY))
    expect(await fine.waitForError()).toBe('AuthenticationRequired')
    await fine.closed
    // A PDS's longest token (an hour) passes.
    const hour = connect((await bob.agent.com.atproto.server.getServiceAuth({ aud: SERVICE_DID, lxm: SUBSCRIBE_INVITES, exp: Math.floor(Date.now() / 1000) + 3600 })).data.token)
    await hour.opened
    await closeAll()
    expect(hour.errors).toEqual([])
  })

  it('caps the streams of one caller at SUBSCRIBE_MAX_PER_DID: RateLimitExceeded; a closed one frees its place', async () => {
    const token = await bob.token(SUBSCRIBE_INVITES)
    const three = [connect(token), connect(token), connect(token)]
    // At most two are ever admitted, and none leaves: the one refused is refused for the cap.
    await waitFor(async () => three.some((c) => c.errors.length > 0), 'a refusal')
    const refused = three.filter((c) => c.errors.length > 0)
    expect(refused.map((c) => c.errors)).toEqual([['RateLimitExceeded']])
    const [kept, closing] = three.filter((c) => c.errors.length === 0) as [PushClient, PushClient]
    await closing.close()
    await waitFor(async () => (await subscribers()) === 1, 'the closed stream to end')
    const again = connect(token)
    await again.opened
    // Both admitted streams hear of a new invite.
    const invite = await alice.invite(await alice.node(), bob)
    await kept.waitForChange((c) => c.invite.uri === invite.uri, 'the kept stream')
    await again.waitForChange((c) => c.invite.uri === invite.uri, 'the stream opened after the close')
    expect(again.errors).toEqual([])
    await closeAll()
  })

  it('caps the streams of one client address at SUBSCRIBE_MAX_PER_ADDRESS: HTTP 429 before the upgrade', async () => {
    const address = '203.0.113.9'
    const opened = await Promise.all(
      others.map(async (u) => {
        const c = connect(await u.token(SUBSCRIBE_INVITES), { forwardedFor: address })
        await c.opened
        return c
      }),
    )
    const refused = connect(await alice.token(SUBSCRIBE_INVITES), { forwardedFor: address })
    await expect(refused.opened).rejects.toThrow('HTTP 429')
    // Another address is not held back.
    await connect(await alice.token(SUBSCRIBE_INVITES)).opened
    await opened[0]?.close()
    await waitFor(async () => {
      const c = connect(await alice.token(SUBSCRIBE_INVITES), { forwardedFor: address })
      return c.opened.then(() => true, () => false)
    }, 'a place at the address once one stream closed')
    await closeAll()
  })

  it('replays read through a pool of their own: replays stuck in the database leave the queries their connections', async () => {
    const locker = new pg.Client({ connectionString: h.config.databaseUrl, options: `-c search_path=${h.config.databaseSchema}` })
    await locker.connect()
    const stuck = async () =>
      Number((await locker.query<{ n: string }>(`SELECT count(*) AS n FROM pg_locks WHERE relation = 'invite_change'::regclass AND NOT granted`)).rows[0]?.n)
    let replays: PushClient[] = []
    try {
      // Every read of the feed waits on this lock, holding its connection.
      await locker.query('BEGIN')
      await locker.query('LOCK TABLE invite_change IN ACCESS EXCLUSIVE MODE')
      replays = await Promise.all([bob, ...others].map(async (u) => connect(await u.token(SUBSCRIBE_INVITES), { params: { cursor: 0 } })))
      // As many as the API's pool holds: were they its connections, no query could have one.
      await waitFor(async () => (await stuck()) >= 2, 'replays waiting on the feed')
      const listed = await h.get(LIST_INVITES, { invitee: bob.did }, await bob.token(LIST_INVITES))
      expect(listed.status, JSON.stringify(listed.body)).toBe(200)
    } finally {
      await locker.query('COMMIT')
      await locker.end()
    }
    // Released, the replays go on.
    const [ofBob] = replays as [PushClient]
    await ofBob.waitForChange((c) => c.invite.invitee === bob.did, "bob's replay")
    expect(replays.flatMap((c) => c.errors)).toEqual([])
    await closeAll()
  })
})
