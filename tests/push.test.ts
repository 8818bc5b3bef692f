import { Writable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '../src/lib/log.ts'
import { startService } from '../src/service.ts'
import { SUBSCRIBE_INVITES } from '../src/push/subscription.ts'
import { changesAfter, feedBounds, listenApplicationName } from '../src/db/changes.ts'
import { generateProvenInvites } from '../src/db/bench-data.ts'
import { ADMIN_PASSWORD, moderator } from './support/admin.ts'
import { LIST_INVITES, adminAgent, createUser, lexicons, startHarness, testConfig, waitFor, type Harness, type Ref, type User } from './support/harness.ts'
import { PushClient, type Change } from './support/push-client.ts'

/** Every #change must be valid against the subscription's lexicon, view and all. */
const assertValidChange = (c: Change): void => {
  lexicons.assertValidXrpcMessage(SUBSCRIBE_INVITES, { $type: `${SUBSCRIBE_INVITES}#change`, ...c })
}

describe('subscribeInvites', () => {
  let h: Harness
  let alice: User
  let bob: User
  let carol: User
  const clients: PushClient[] = []
  const connect = async (user: User | null, opts: ConstructorParameters<typeof PushClient>[1] = {}, lxm = SUBSCRIBE_INVITES) => {
    const token = user ? await user.token(lxm) : undefined
    const c = new PushClient(h.service.url, { token, ...opts })
    clients.push(c)
    await c.opened
    return c
  }

  beforeAll(async () => {
    // Expiries recorded (and pushed) within 200 ms of expiresAt.
    h = await startHarness({ admin: { ...testConfig('x').admin, password: ADMIN_PASSWORD }, retention: { ...testConfig('x').retention, expiryIntervalMs: 200 } })
    ;[alice, bob, carol] = await Promise.all([createUser('pa'), createUser('pb'), createUser('pc')])
  })
  afterAll(async () => {
    for (const c of clients) c.ws.terminate()
    await h?.stop()
  })

  it('pushes each change kind, with the view listInvites returns, to invitee and inviter only', async () => {
    const asBob = await connect(bob)
    const asAlice = await connect(alice)
    const asCarol = await connect(carol)
    const node = await alice.node()
    const invite = await alice.invite(node, bob, { message: 'join me' })
    const created = await asBob.waitForChange((c) => c.invite.uri === invite.uri && c.kind === 'created', 'created')
    assertValidChange(created)
    expect(created.invite.message).toBe('join me')
    // The same view the query returns.
    const listed = await h.get<{ invites: unknown[] }>(LIST_INVITES, { invitee: bob.did }, await bob.token(LIST_INVITES))
    expect(listed.body.invites).toContainEqual(created.invite)

    const kindOf = (uri: string, kind: string) => (c: Change) => c.invite.uri === uri && c.kind === kind
    await alice.put(invite.uri, { subject: node, invitee: bob.did, role: 'editor', createdAt: new Date().toISOString() })
    expect((await asBob.waitForChange(kindOf(invite.uri, 'updated'), 'updated')).invite.role).toBe('editor')
    const acceptance = await bob.accept(invite, node)
    const accepted = await asBob.waitForChange(kindOf(invite.uri, 'accepted'), 'accepted')
    expect(accepted.invite.state).toBe('accepted')
    expect(accepted.invite.acceptanceUri).toBe(acceptance.uri)
    await bob.delete(acceptance.uri)
    expect((await asBob.waitForChange(kindOf(invite.uri, 'acceptanceWithdrawn'), 'acceptanceWithdrawn')).invite.state).toBe('pending')

    const mod = moderator(h)
    await mod.act('takedownInvite', { uri: invite.uri, reason: 'test' })
    const takenDown = await asBob.waitForChange(kindOf(invite.uri, 'takenDown'), 'takenDown')
    // What a moderator hid is not sent again.
    expect(takenDown.invite.message).toBeUndefined()
    await mod.act('restoreInvite', { uri: invite.uri, reason: 'test' })
    await asBob.waitForChange(kindOf(invite.uri, 'restored'), 'restored')
    // An inviter's block hides all of their invites, and its lifting shows them again.
    await mod.act('blockInviter', { did: alice.did, reason: 'test' })
    await waitFor(async () => asBob.changes.filter((c) => c.kind === 'takenDown').length === 2, 'takenDown by the block')
    await mod.act('unblockInviter', { did: alice.did, reason: 'test' })
    await waitFor(async () => asBob.changes.filter((c) => c.kind === 'restored').length === 2, 'restored by the unblock')
    await alice.delete(invite.uri)
    expect((await asBob.waitForChange(kindOf(invite.uri, 'deleted'), 'deleted')).invite.state).toBe('rejected')

    const node2 = await alice.node()
    const second = await alice.invite(node2, bob)
    await asBob.waitForChange(kindOf(second.uri, 'created'), 'second created')
    await alice.delete(node2.uri)
    await asBob.waitForChange(kindOf(second.uri, 'subjectDeleted'), 'subjectDeleted')

    const expiring = await alice.invite(node, bob, { expiresAt: new Date(Date.now() + 1500).toISOString() })
    await asBob.waitForChange(kindOf(expiring.uri, 'created'), 'expiring created')
    expect((await asBob.waitForChange(kindOf(expiring.uri, 'expired'), 'expired')).invite.state).toBe('expired')

    for (const c of asBob.changes) assertValidChange(c)
    // The inviter hears of the same changes, in the same order; a third party of none.
    await waitFor(async () => asAlice.changes.length === asBob.changes.length, 'the inviter to have every change')
    expect(asAlice.changes.map((c) => `${c.seq} ${c.kind}`)).toEqual(asBob.changes.map((c) => `${c.seq} ${c.kind}`))
    const seqs = asBob.changes.map((c) => c.seq)
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs)
    expect(new Set(seqs).size).toBe(seqs.length)
    expect(asBob.changes.map((c) => c.kind)).toEqual([
      'created', 'updated', 'accepted', 'acceptanceWithdrawn', 'takenDown', 'restored', 'takenDown', 'restored', 'deleted',
      'created', 'subjectDeleted', 'created', 'expired',
    ])
    expect(asCarol.changes).toEqual([])
    expect(asCarol.errors).toEqual([])
  })

  it("an inviter's account taken down on their PDS hides their invites (takenDown), reinstated shows them (restored)", async () => {
    const [dave, erin] = await Promise.all([createUser('pd'), createUser('pe')])
    const asErin = await connect(erin)
    const node = await dave.node()
    const invite = await dave.invite(node, erin)
    await asErin.waitForChange((c) => c.invite.uri === invite.uri && c.kind === 'created', 'created')
    const takedown = (applied: boolean) =>
      adminAgent().com.atproto.admin.updateSubjectStatus({
        subject: { $type: 'com.atproto.admin.defs#repoRef', did: dave.did },
        takedown: { applied, ref: applied ? 'push-test' : undefined },
      })
    await takedown(true)
    const hidden = await asErin.waitForChange((c) => c.invite.uri === invite.uri && c.kind === 'takenDown', 'takenDown')
    expect(hidden.invite.message).toBeUndefined()
    await takedown(false)
    await asErin.waitForChange((c) => c.invite.uri === invite.uri && c.kind === 'restored', 'restored')
  })

  it('refuses with an XRPC error frame: no token, wrong lxm, wrong aud, expired, another scope, bad params', async () => {
    const refused = async (c: PushClient) => {
      const error = await c.waitForError()
      const closed = await c.closed
      expect(closed.code).toBe(1008)
      return error
    }
    expect(await refused(await connect(null))).toBe('AuthenticationRequired')
    expect(await refused(await connect(bob, {}, LIST_INVITES))).toBe('AuthenticationRequired')
    const wrongAud = new PushClient(h.service.url, { token: await bob.token(SUBSCRIBE_INVITES, 'did:web:elsewhere.test') })
    clients.push(wrongAud)
    expect(await refused(wrongAud)).toBe('AuthenticationRequired')
    const shortLived = await bob.agent.com.atproto.server.getServiceAuth({
      aud: h.config.serviceDid,
      lxm: SUBSCRIBE_INVITES,
      exp: Math.floor(Date.now() / 1000) + 1,
    })
    await new Promise((r) => setTimeout(r, 2100))
    expect(await refused(await connect(null, { token: shortLived.data.token }))).toBe('AuthenticationRequired')
    expect(await refused(await connect(bob, { params: { invitee: alice.did } }))).toBe('Forbidden')
    expect(await refused(await connect(bob, { params: { subjectUri: `at://${alice.did}/pub.chive.graph.node/x` } }))).toBe('Forbidden')
    expect(await refused(await connect(bob, { params: { cursor: 'soon' } }))).toBe('InvalidRequest')
    expect(await refused(await connect(bob, { params: { cursor: 10 ** 12 } }))).toBe('FutureCursor')
    // A plain GET is told it is a subscription.
    const get = await h.get(SUBSCRIBE_INVITES, {}, await bob.token(SUBSCRIBE_INVITES))
    expect(get.status).toBe(400)
  })

  it("a browser's token rides in the subprotocols; the scope filters narrow the stream", async () => {
    const browser = await connect(bob, { browser: true })
    expect(browser.ws.protocol).toBe('bearer')
    const scoped = await connect(bob, { params: { invitee: bob.did } })
    const node = await alice.node()
    const invite = await alice.invite(node, bob)
    await browser.waitForChange((c) => c.invite.uri === invite.uri, 'browser push')
    await scoped.waitForChange((c) => c.invite.uri === invite.uri, 'scoped push')
    const bySubject = await connect(alice, { params: { subjectUri: node.uri } })
    const onSubject = await alice.invite(node, carol)
    await bySubject.waitForChange((c) => c.invite.uri === onSubject.uri, 'a push on a subject in the caller repo')
    expect(bySubject.changes.every((c) => c.invite.subjectUri === node.uri)).toBe(true)
    const other = await connect(bob, { params: { inviter: bob.did } })
    const mine = await bob.node()
    const own = await bob.invite(mine, carol)
    await other.waitForChange((c) => c.invite.uri === own.uri, 'own invite as inviter')
    expect(other.changes.map((c) => c.invite.uri)).toEqual([own.uri])
  })

  it('a stream ends when its token expires, unless refreshed with a token of the same caller', async () => {
    const short = async (user: User, seconds: number) =>
      (await user.agent.com.atproto.server.getServiceAuth({ aud: h.config.serviceDid, lxm: SUBSCRIBE_INVITES, exp: Math.floor(Date.now() / 1000) + seconds })).data.token
    const expiring = await connect(null, { token: await short(bob, 3) })
    const refreshed = await connect(null, { token: await short(bob, 3) })
    refreshed.refresh(await bob.token(SUBSCRIBE_INVITES))
    const hijacked = await connect(null, { token: await short(bob, 30) })
    hijacked.refresh(await carol.token(SUBSCRIBE_INVITES))
    expect(await hijacked.waitForError()).toBe('Forbidden')
    expect(await expiring.waitForError(8000)).toBe('ExpiredToken')
    await expiring.closed
    // Past the first token's exp, the refreshed stream still delivers.
    const node = await alice.node()
    const invite = await alice.invite(node, bob)
    await refreshed.waitForChange((c) => c.invite.uri === invite.uri, 'a push after the refresh')
    expect(refreshed.errors).toEqual([])
    const garbage = await connect(bob)
    garbage.ws.send('hello')
    expect(await garbage.waitForError()).toBe('InvalidRequest')
  })

  it('resumes from a cursor: every change after it once, in order, across the switch to live', async () => {
    const first = await connect(bob, { params: { cursor: 0 } })
    // Everything so far: replayed from Postgres.
    const listed = await h.get<{ invites: { uri: string }[] }>(LIST_INVITES, { invitee: bob.did }, await bob.token(LIST_INVITES))
    await waitFor(async () => listed.body.invites.every((i) => first.changes.some((c) => c.invite.uri === i.uri)), 'the replay')
    await new Promise((r) => setTimeout(r, 300))
    const seen = first.changes.map((c) => c.seq)
    await first.close()
    const last = seen[seen.length - 1] as number

    // Changes while away, and more while the next subscriber replays.
    const node = await alice.node()
    const away: Ref[] = []
    for (let i = 0; i < 3; i++) away.push(await alice.invite(node, bob))
    const during = Promise.all([0, 1, 2, 3, 4].map(() => alice.invite(node, bob)))
    const resumed = await connect(bob, { params: { cursor: last } })
    const more = await during
    const expected = [...away, ...more].map((r) => r.uri)
    await waitFor(async () => expected.every((u) => resumed.changes.some((c) => c.invite.uri === u && c.kind === 'created')), 'every change after the cursor')
    await new Promise((r) => setTimeout(r, 300))
    const seqs = resumed.changes.map((c) => c.seq)
    expect(seqs.every((s) => s > last)).toBe(true)
    expect(new Set(seqs).size).toBe(seqs.length)
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs)
    expect(resumed.changes.filter((c) => c.kind === 'created').map((c) => c.invite.uri).sort()).toEqual([...expected].sort())
  })

  it('any replica serves subscriptions: the feed reaches a replica that does not ingest', async () => {
    const replica = await startService({ ...h.config, port: 0 }, createLogger('silent'))
    try {
      expect(replica.leader).toBe(false)
      const token = await bob.token(SUBSCRIBE_INVITES)
      const c = new PushClient(replica.url, { token })
      clients.push(c)
      await c.opened
      const node = await alice.node()
      const invite = await alice.invite(node, bob)
      await c.waitForChange((x) => x.invite.uri === invite.uri && x.kind === 'created', 'a push from the other replica')
    } finally {
      await replica.stop()
    }
  })

  it('keeps pushing when its LISTEN connection is killed: it reads the feed, reconnects, and says so in _health', async () => {
    const c = await connect(bob)
    const killed = await h.service.pool.query<{ ok: boolean }>(
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`,
      [listenApplicationName(h.config.databaseSchema)],
    )
    expect(killed.rows.length).toBeGreaterThan(0)
    expect(killed.rows.every((r) => r.ok)).toBe(true)
    const node = await alice.node()
    const invite = await alice.invite(node, bob)
    await c.waitForChange((x) => x.invite.uri === invite.uri, 'a push after the LISTEN connection died')
    await waitFor(async () => (await h.get<{ push: { listening: boolean } }>('_health')).body.push.listening, 'LISTEN back')
  })

  it('feed ids commit in the order they are drawn: a reader of "after my position" misses none under concurrent writers', async () => {
    const pool = h.service.pool
    const start = (await feedBounds(pool)).head
    let position = start
    const seen: number[] = []
    let writing = true
    const read = async () => {
      for (const c of await changesAfter(pool, position, 500)) {
        seen.push(c.id)
        position = c.id
      }
    }
    const reader = (async () => {
      while (writing) await read()
    })()
    await Promise.all(
      Array.from({ length: 6 }, async (_, w) => {
        for (let k = 0; k < 15; k++) {
          await generateProvenInvites(pool, { inviter: 'did:plc:feedwriter', invitees: [`did:plc:feedreader${w}`], perInvitee: 3, tag: `w${w}k${k}` })
        }
      }),
    )
    writing = false
    await reader
    await read()
    const all = await pool.query<{ id: number }>('SELECT id FROM invite_change WHERE id > $1 ORDER BY id', [start])
    expect(all.rows.length).toBeGreaterThanOrEqual(6 * 15 * 3)
    expect(seen).toEqual(all.rows.map((r) => r.id))
  })

  it('a cursor below what the retention purged is told OutdatedCursor, then replayed from there', async () => {
    const pool = h.service.pool
    // Everything before bob's last change goes.
    const { rows } = await pool.query<{ id: number }>(
      'SELECT max(c.id)::int AS id FROM invite_change c JOIN invite i ON i.uri = c.invite_uri WHERE i.invitee = $1',
      [bob.did],
    )
    const cut = (rows[0]?.id ?? 0) - 1
    await pool.query(`UPDATE invite_change SET at = now() - interval '400 days' WHERE id <= $1`, [cut])
    expect((await h.service.upkeep.run()).changes).toBeGreaterThan(0)
    const c = await connect(bob, { params: { cursor: 0 } })
    await waitFor(async () => c.frames.length > 0 && c.frames, 'the first frame')
    expect(c.frames[0]).toMatchObject({ type: '#info', body: { name: 'OutdatedCursor' } })
    await waitFor(async () => c.changes.length > 0, 'the changes kept')
    expect(c.changes.every((x) => x.seq > cut)).toBe(true)
  })

  it('never logs a token, whichever header carries it', () => {
    let out = ''
    const log = createLogger('trace', new Writable({ write: (chunk: Buffer, _e, cb) => ((out += chunk.toString()), cb()) }))
    const token = 'eyJhbGciOiJFUzI1NksifQ.eyJpc3MiOiJkaWQ6cGxjOngifQ.c2lnbmF0dXJl'
    log.info({ req: { headers: { authorization: `Bearer ${token}`, 'sec-websocket-protocol': `bearer, ${token}` } }, token }, 'request')
    expect(out).toContain('[Redacted]')
    expect(out).not.toContain(token)
  })
})

describe('subscribeInvites connection limit', () => {
  it('refuses connection attempts past RATE_LIMIT_MAX per address with 429 RateLimitExceeded', async () => {
    const h = await startHarness({ api: { ...testConfig('x').api, rateLimitMax: 3 } })
    const clients: PushClient[] = []
    try {
      const user = await createUser('rl')
      const token = await user.token(SUBSCRIBE_INVITES)
      for (let i = 0; i < 3; i++) {
        const c = new PushClient(h.service.url, { token })
        clients.push(c)
        await c.opened
      }
      const refused = new PushClient(h.service.url, { token })
      clients.push(refused)
      await expect(refused.opened).rejects.toThrow('HTTP 429')
    } finally {
      for (const c of clients) c.ws.terminate()
      await h.stop()
    }
  })
})

describe('subscribeInvites connection limit behind a proxy', () => {
  it('counts each client named by a trusted X-Forwarded-For hop, not the proxy, as the API does', async () => {
    const h = await startHarness({ api: { ...testConfig('x').api, rateLimitMax: 2, trustProxy: 1 } })
    const clients: PushClient[] = []
    try {
      const token = await (await createUser('rlp')).token(SUBSCRIBE_INVITES)
      const open = (forwardedFor: string) => {
        const c = new PushClient(h.service.url, { token, forwardedFor })
        clients.push(c)
        return c.opened
      }
      // Two clients behind the same proxy address: each has its own allowance.
      for (const client of ['198.51.100.1', '198.51.100.2']) {
        await open(client)
        await open(client)
      }
      await expect(open('198.51.100.1')).rejects.toThrow('HTTP 429')
      await expect(open('198.51.100.3')).resolves.toBeUndefined()
    } finally {
      for (const c of clients) c.ws.terminate()
      await h.stop()
    }
  })
})

describe('subscribeInvites heartbeats', () => {
  it('pings every SUBSCRIBE_HEARTBEAT_MS and drops a client that stops answering; one that answers stays', async () => {
    const h = await startHarness({ push: { ...testConfig('x').push, heartbeatMs: 150 } })
    try {
      const user = await createUser('hb')
      const token = await user.token(SUBSCRIBE_INVITES)
      const answering = new PushClient(h.service.url, { token })
      // A client whose pongs never come, as a vanished peer's.
      const silent = new PushClient(h.service.url, { token, autoPong: false })
      await Promise.all([answering.opened, silent.opened])
      let pings = 0
      answering.ws.on('ping', () => pings++)
      await silent.closed
      await waitFor(async () => pings >= 4, 'four pings answered')
      expect(answering.closedWith).toBeUndefined()
      answering.ws.terminate()
    } finally {
      await h.stop()
    }
  })
})
