import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { adminAgent, createUser, freshSchema, startHarness, testConfig, waitFor, type Harness, type User } from './support/harness.ts'
import { buildRequest, rawRequest } from './support/raw-http.ts'
import { runService } from './support/service-process.ts'
import { views } from './support/views.ts'
import { ADMIN_NS, ADMIN_PASSWORD, adminCall, basic, moderator, type AuditEventView } from './support/admin.ts'

let h: Harness
let v: ReturnType<typeof views>
let m: ReturnType<typeof moderator>
let mod: User
let alice: User
let bob: User

beforeAll(async () => {
  ;[mod, alice, bob] = await Promise.all([createUser('mod'), createUser('alice'), createUser('bob')])
  h = await startHarness({
    admin: { ...testConfig('unused').admin, password: ADMIN_PASSWORD, moderatorDids: [mod.did], spamPerHour: 3 },
  })
  v = views(h)
  m = moderator(h)
})
afterAll(async () => {
  await h?.stop()
})

const ALL_METHODS: [string, 'GET' | 'POST'][] = [
  ['searchInvites', 'GET'],
  ['getInviteHistory', 'GET'],
  ['listRejections', 'GET'],
  ['getInviterVolume', 'GET'],
  ['listBlockedInviters', 'GET'],
  ['getFirehoseStatus', 'GET'],
  ['takedownInvite', 'POST'],
  ['restoreInvite', 'POST'],
  ['blockInviter', 'POST'],
  ['unblockInviter', 'POST'],
]

const eventsOf = (events: AuditEventView[], subject: string) => events.filter((e) => e.subject === subject).map((e) => e.event)

describe('moderator auth', () => {
  it('refuses every admin method without credentials or with a wrong password', async () => {
    for (const [name, method] of ALL_METHODS) {
      const body = method === 'POST' ? { uri: 'at://did:plc:x/pub.chive.collaboration.invite/x', reason: 'r' } : undefined
      for (const authorization of [undefined, basic('wrong'), basic(''), 'Basic !!!', 'Bearer nonsense']) {
        const res = await adminCall(h, name, { authorization, body, params: { uri: 'at://did:plc:x/a/b' } })
        expect(res.status, `${name} ${authorization}`).toBe(401)
        expect(res.body.error).toBe('AuthenticationRequired')
      }
    }
  })

  it('accepts the admin password and service auth from a listed moderator only', async () => {
    expect((await adminCall(h, 'getFirehoseStatus', { authorization: basic(ADMIN_PASSWORD) })).status).toBe(200)
    const lxm = `${ADMIN_NS}.getFirehoseStatus`
    expect((await adminCall(h, 'getFirehoseStatus', { authorization: `Bearer ${await mod.token(lxm)}` })).status).toBe(200)
    const stranger = await adminCall(h, 'getFirehoseStatus', { authorization: `Bearer ${await alice.token(lxm)}` })
    expect(stranger.status).toBe(403)
    expect(stranger.body.error).toBe('Forbidden')
    // A moderator's token is good for the method it was minted for only.
    const otherMethod = await adminCall(h, 'searchInvites', { authorization: `Bearer ${await mod.token(lxm)}` })
    expect(otherMethod.status).toBe(401)
  })

  it('without ADMIN_PASSWORD and MODERATOR_DIDS nothing gets in; failures are limited per address and logged', async () => {
    const closed = await startHarness({ admin: { ...h.config.admin, password: undefined, moderatorDids: [] } })
    try {
      expect((await adminCall(closed, 'getFirehoseStatus', { authorization: basic('') })).status).toBe(401)
      expect((await adminCall(closed, 'getFirehoseStatus', { authorization: basic('anything') })).status).toBe(401)
      const lxm = `${ADMIN_NS}.searchInvites`
      expect((await adminCall(closed, 'searchInvites', { authorization: `Bearer ${await mod.token(lxm)}` })).status).toBe(403)
    } finally {
      await closed.stop()
    }

    // A service of its own, as `npm start` runs it, whose log is read.
    const c = testConfig(freshSchema())
    const env = {
      DATABASE_URL: c.databaseUrl,
      DATABASE_SCHEMA: c.databaseSchema,
      RELAY_URL: c.relayUrl,
      PLC_URL: c.plcUrl,
      BACKFILL_ON_GAP: 'false',
      ADMIN_PASSWORD: 'pw',
      ADMIN_AUTH_MAX_FAILURES: '3',
    }
    const { output } = await runService(env, async (address) => {
      const status = async (password: string, localAddress = '127.0.0.1') =>
        (await rawRequest(address, buildRequest('GET', `/xrpc/${ADMIN_NS}.getFirehoseStatus`, [['Authorization', basic(password)]]), { localAddress }))?.status
      for (let i = 0; i < 3; i++) expect(await status('guess')).toBe(401)
      // Past the limit even the right password is refused, from that address only.
      expect(await status('pw')).toBe(429)
      expect(await status('pw', '127.0.0.2')).toBe(200)
    })
    const logged = output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; ip?: string })
      .filter((l) => l.msg === 'admin authentication failed')
    expect(logged.map((l) => l.ip)).toEqual(['127.0.0.1', '127.0.0.1', '127.0.0.1'])
  })
})

describe('takedown, restore and block', () => {
  it('a takedown hides the invite from listInvites and listCollaborators; a restore brings it back', async () => {
    const node = await alice.node()
    const invite = await alice.invite(node, bob)
    await bob.accept(invite, node)
    await v.waitForState(bob, invite.uri, 'accepted')
    expect(await v.collaborators(node.uri)).toHaveLength(1)

    const noReason = await adminCall(h, 'takedownInvite', { authorization: basic(ADMIN_PASSWORD), body: { uri: invite.uri, reason: '  ' } })
    expect(noReason.status).toBe(400)
    expect((await adminCall(h, 'takedownInvite', { authorization: basic(ADMIN_PASSWORD), body: { uri: invite.uri } })).status).toBe(400)
    const unknown = `at://${alice.did}/pub.chive.collaboration.invite/nope`
    expect((await adminCall(h, 'takedownInvite', { authorization: basic(ADMIN_PASSWORD), body: { uri: unknown, reason: 'x' } })).status).toBe(404)

    expect(await m.act('takedownInvite', { uri: invite.uri, reason: 'harassment report #12' })).toMatchObject({ changed: true })
    expect(await m.act('takedownInvite', { uri: invite.uri, reason: 'again' })).toMatchObject({ changed: false })
    expect(await v.find(bob, invite.uri)).toBeUndefined()
    expect((await v.list(alice, { inviter: alice.did })).invites.map((i) => i.uri)).not.toContain(invite.uri)
    expect(await v.collaborators(node.uri)).toEqual([])
    const [hidden] = (await m.search({ uri: invite.uri })).invites
    expect(hidden).toMatchObject({ served: false, takedown: { reason: 'harassment report #12', actor: 'moderator' } })

    await m.act('restoreInvite', { uri: invite.uri, reason: 'report withdrawn' })
    expect((await v.find(bob, invite.uri))?.state).toBe('accepted')
    expect(await v.collaborators(node.uri)).toHaveLength(1)

    const events = (await m.history(invite.uri)).events.filter((e) => e.actor !== undefined)
    expect(events.map((e) => [e.event, e.reason, e.actor, e.actorKind])).toEqual([
      ['takedown', 'harassment report #12', 'moderator', 'password'],
      ['restore', 'report withdrawn', 'moderator', 'password'],
    ])
  })

  it('a block hides all of an inviter’s invites, including ones written later, until unblocked', async () => {
    const spammer = await createUser('spam')
    const node = await spammer.node()
    const before = await spammer.invite(node, bob)
    await v.waitForState(bob, before.uri, 'pending')

    const lxm = `${ADMIN_NS}.blockInviter`
    const viaToken = await adminCall(h, 'blockInviter', {
      authorization: `Bearer ${await mod.token(lxm)}`,
      body: { did: spammer.did, reason: 'bulk invites' },
    })
    expect(viaToken.status, JSON.stringify(viaToken.body)).toBe(200)
    expect(await v.find(bob, before.uri)).toBeUndefined()

    const after = await spammer.invite(await spammer.node(), bob)
    await m.waitForInvite(after.uri, (i) => i.verification === 'verified')
    await v.barrier(alice, bob)
    expect((await v.inbox(bob)).invites.map((i) => i.uri)).not.toContain(after.uri)
    const found = (await m.search({ inviter: spammer.did })).invites
    expect(found.map((i) => [i.served, i.inviterBlock?.actor])).toEqual([
      [false, mod.did],
      [false, mod.did],
    ])
    const blocks = await m.ok<{ blocks: { did: string; reason: string }[] }>('listBlockedInviters', {})
    expect(blocks.blocks).toContainEqual(expect.objectContaining({ did: spammer.did, reason: 'bulk invites' }))
    expect(eventsOf((await m.history(after.uri)).events, spammer.did)).toEqual(['block'])

    await m.act('unblockInviter', { did: spammer.did, reason: 'appeal granted' })
    await v.waitForState(bob, before.uri, 'pending')
    await v.waitForState(bob, after.uri, 'pending')
  })
})

describe('audit trail', () => {
  it('keeps an invite’s full history in order, and purges its message when the author deletes it', async () => {
    const node = await alice.node()
    const invite = await alice.invite(node, bob, { message: 'private words' })
    await v.waitForState(bob, invite.uri, 'pending')
    await alice.put(invite.uri, { subject: node, invitee: bob.did, role: 'editor', message: 'edited words', createdAt: new Date().toISOString() })
    await waitFor(async () => (await v.find(bob, invite.uri))?.role === 'editor', 'the update')
    const acceptance = await bob.accept(invite, node)
    await v.waitForState(bob, invite.uri, 'accepted')
    await bob.delete(acceptance.uri)
    await v.waitForState(bob, invite.uri, 'pending')
    await m.act('takedownInvite', { uri: invite.uri, reason: 'checking' })

    const live = await m.history(invite.uri)
    expect(live.invite).toMatchObject({ uri: invite.uri, message: 'edited words', served: false })
    expect(live.events.filter((e) => e.message).map((e) => e.message)).toEqual(['private words', 'edited words'])

    await alice.delete(invite.uri)
    const history = await waitFor(async () => {
      const h = await m.history(invite.uri)
      return h.events.some((e) => e.event === 'delete' && e.subject === invite.uri) ? h : undefined
    }, 'the delete in the history')
    expect(history.events.map((e) => [e.subject === invite.uri ? 'invite' : 'acceptance', e.event, e.reason ?? null])).toEqual([
      ['invite', 'create', null],
      ['invite', 'verification', 'verified'],
      ['invite', 'update', null],
      ['invite', 'verification', 'verified'],
      ['acceptance', 'create', null],
      ['acceptance', 'delete', null],
      ['invite', 'takedown', 'checking'],
      ['invite', 'delete', null],
    ])
    const ids = history.events.map((e) => e.id)
    expect(ids).toEqual([...ids].sort((a, b) => a - b))
    for (const e of history.events.filter((e) => e.event !== 'takedown')) {
      expect(e.seq, e.event).toBeGreaterThan(0)
      expect(e.rev, e.event).toMatch(/^[a-z0-9]+$/)
    }
    expect(history.events.some((e) => e.message !== undefined)).toBe(false)
    expect(history.invite).toMatchObject({ state: 'rejected' })
    expect(history.invite?.message).toBeUndefined()
  })

  it('records rejections and verification failures with their reason, and account status changes', async () => {
    const node = await alice.node()
    const self = await alice.invite(node, alice)
    await alice.invite(node, alice)
    const elsewhere = await alice.invite({ uri: `at://${alice.did}/app.bsky.feed.post/abc`, cid: node.cid }, bob)
    await v.barrier(alice, bob)
    const rejected = await m.history(self.uri)
    expect(rejected.events.map((e) => [e.event, e.reason])).toEqual([['rejection', 'self-invite']])
    expect(rejected.invite).toBeUndefined()
    const unverified = await m.history(elsewhere.uri)
    expect(unverified.events.map((e) => [e.event, e.reason])).toEqual([
      ['create', undefined],
      ['verification', 'not-chive-record'],
    ])

    const log = await m.ok<{ rejections: { uri?: string; reason: string; record?: { invitee?: string } }[]; cursor?: string }>(
      'listRejections',
      { params: { repo: alice.did } },
    )
    expect(log.rejections.find((r) => r.uri === self.uri)).toMatchObject({ reason: 'self-invite', record: { invitee: alice.did } })
    const page1 = await m.ok<{ rejections: { id: number }[]; cursor?: string }>('listRejections', { params: { limit: 1 } })
    expect(page1.cursor).toBeDefined()
    const page2 = await m.ok<{ rejections: { id: number }[] }>('listRejections', { params: { limit: 1, cursor: page1.cursor ?? '' } })
    expect(page2.rejections[0]?.id).toBeLessThan(page1.rejections[0]?.id ?? 0)

    const carol = await createUser('carol')
    const invite = await carol.invite(await carol.node(), bob)
    await v.waitForState(bob, invite.uri, 'pending')
    const takedown = (applied: boolean) =>
      adminAgent().com.atproto.admin.updateSubjectStatus({
        subject: { $type: 'com.atproto.admin.defs#repoRef', did: carol.did },
        takedown: { applied, ref: applied ? 'pds-takedown' : undefined },
      })
    await takedown(true)
    await waitFor(async () => (await v.find(bob, invite.uri)) === undefined, 'the inviter to be taken down')
    await takedown(false)
    await v.waitForState(bob, invite.uri, 'pending')
    const accountEvents = (await m.history(invite.uri)).events.filter((e) => e.event === 'account')
    expect(accountEvents.map((e) => [e.subject, e.reason])).toEqual([
      [carol.did, 'takendown'],
      [carol.did, 'active'],
    ])
    expect(accountEvents.every((e) => (e.seq ?? 0) > 0)).toBe(true)

    // A deleted account takes its words out of the history too.
    const dave = await createUser('dave')
    const said = await dave.invite(await dave.node(), bob, { message: 'words of a leaving account' })
    await v.waitForState(bob, said.uri, 'pending')
    await adminAgent().com.atproto.admin.deleteAccount({ did: dave.did })
    const afterDelete = await waitFor(async () => {
      const h = await m.history(said.uri)
      return h.events.some((e) => e.event === 'account' && e.reason === 'deleted') ? h : undefined
    }, 'the account deletion in the history')
    expect(afterDelete.events.map((e) => e.event)).toEqual(['create', 'verification', 'account'])
    expect(afterDelete.events.some((e) => e.message !== undefined)).toBe(false)
  })
})

describe('moderator queries', () => {
  it('searches by inviter, invitee, subject, state, verification and time, in keyset pages', async () => {
    const [inviter, invitee] = await Promise.all([createUser('srch'), createUser('srce')])
    const node = await inviter.node()
    const start = new Date(Date.now() - 1000).toISOString()
    const uris: string[] = []
    for (let i = 0; i < 3; i++) uris.push((await inviter.invite(node, invitee)).uri)
    const bad = await inviter.invite({ uri: `at://${inviter.did}/pub.chive.graph.node/missing`, cid: node.cid }, invitee)
    await m.waitForInvite(bad.uri, (i) => i.verification === 'subject-missing')
    for (const uri of uris) await m.waitForInvite(uri, (i) => i.verification === 'verified')

    const all = await m.search({ inviter: inviter.did })
    expect(all.total).toBe(4)
    expect((await m.search({ invitee: invitee.did, verification: 'subject-missing' })).invites.map((i) => i.uri)).toEqual([bad.uri])
    expect((await m.search({ subjectUri: node.uri, state: 'pending' })).total).toBe(3)
    expect((await m.search({ inviter: inviter.did, since: start })).total).toBe(4)
    expect((await m.search({ inviter: inviter.did, until: start })).total).toBe(0)

    const seen: string[] = []
    let cursor: string | undefined
    do {
      const page = await m.search({ inviter: inviter.did, limit: 1, ...(cursor ? { cursor } : {}) })
      seen.push(...page.invites.map((i) => i.uri))
      cursor = page.cursor
    } while (cursor)
    expect([...seen].sort()).toEqual([...uris, bad.uri].sort())

    const badParams = await adminCall(h, 'searchInvites', { authorization: basic(ADMIN_PASSWORD), params: { since: 'yesterday' } })
    expect(badParams.status).toBe(400)
  })

  it('counts invites per inviter and flags those above the threshold', async () => {
    const [busy, calm] = await Promise.all([createUser('busy'), createUser('calm')])
    const node = await busy.node()
    const last = []
    for (let i = 0; i < 3; i++) last.push(await busy.invite(node, bob))
    const one = await calm.invite(await calm.node(), bob)
    await m.waitForInvite(last[2]?.uri ?? '')
    await m.waitForInvite(one.uri)
    const volume = await m.ok<{ thresholds: { perHour: number }; inviters: { inviter: string; lastHour: number; lastDay: number; likelySpam: boolean }[] }>(
      'getInviterVolume',
      { params: { limit: 100 } },
    )
    expect(volume.thresholds.perHour).toBe(3)
    expect(volume.inviters.find((r) => r.inviter === busy.did)).toMatchObject({ lastHour: 3, lastDay: 3, likelySpam: true })
    expect(volume.inviters.find((r) => r.inviter === calm.did)).toMatchObject({ lastHour: 1, likelySpam: false })
    const single = await m.ok<{ inviters: { inviter: string }[] }>('getInviterVolume', { params: { inviter: calm.did } })
    expect(single.inviters.map((r) => r.inviter)).toEqual([calm.did])
  })

  it('reports firehose status: relay, cursor, lag, connection, errors, queues and the last hour', async () => {
    await v.barrier(alice, bob)
    const status = await waitFor(async () => {
      const s = await m.ok<Record<string, unknown> & { history: { minute: string; events?: number }[]; cursor?: number }>('getFirehoseStatus', {})
      return s.connected === true && s.history.length > 0 ? s : undefined
    }, 'a connected status')
    expect(status).toMatchObject({ relay: h.config.relayUrl, connected: true, errors: { malformed: 0 } })
    expect(status.cursor).toBeGreaterThan(0)
    expect(typeof status.lagSeconds).toBe('number')
    expect(status.verificationQueue).toMatchObject({ depth: expect.any(Number) })
    expect(status.backfill).toMatchObject({ pendingRepos: expect.any(Number), failedRepos: expect.any(Number), activeRuns: expect.any(Number) })

    // The relay's event time feeds the chart; one that is no timestamp must not fail the commit.
    await h.service.pool.query(
      `INSERT INTO relay_cursor (relay_url, seq, status) VALUES ('wss://odd.example', 5, '{"lastEventTime": "not a time"}')`,
    )
    const sample = await h.service.pool.query(`SELECT seq_last, lag_last FROM ingest_sample WHERE relay_url = 'wss://odd.example'`)
    expect(sample.rows).toEqual([{ seq_last: 5, lag_last: null }])
  })
})

describe('upkeep', () => {
  it('records each expiry once and purges old tombstones and rejections, keeping the history', async () => {
    const node = await alice.node()
    const expiring = await alice.invite(node, bob, { expiresAt: new Date(Date.now() + 1500).toISOString() })
    const deleted = await alice.invite(node, bob, { message: 'soon gone' })
    const self = await alice.invite(node, alice)
    await v.waitForState(bob, deleted.uri, 'pending')
    await alice.delete(deleted.uri)
    await v.waitForState(bob, deleted.uri, 'rejected')
    await v.waitForState(bob, expiring.uri, 'expired')

    const pool = h.service.pool
    await pool.query(`UPDATE invite SET deleted_at = now() - interval '31 days' WHERE uri = $1`, [deleted.uri])
    await pool.query(`UPDATE record_rev SET updated_at = now() - interval '31 days' WHERE uri = $1`, [deleted.uri])
    await pool.query(`UPDATE rejection SET rejected_at = now() - interval '31 days' WHERE uri = $1`, [self.uri])

    const first = await h.service.upkeep.run()
    expect(first).toMatchObject({ tombstones: 1 })
    expect(first.expired).toBeGreaterThanOrEqual(1)
    expect(first.rejections).toBeGreaterThanOrEqual(1)
    expect((await h.service.upkeep.run()).expired).toBe(0)

    expect(eventsOf((await m.history(expiring.uri)).events, expiring.uri).filter((e) => e === 'expiry')).toHaveLength(1)
    expect((await pool.query('SELECT 1 FROM invite WHERE uri = $1', [deleted.uri])).rowCount).toBe(0)
    expect((await pool.query('SELECT 1 FROM rejection WHERE uri = $1', [self.uri])).rowCount).toBe(0)
    const kept = await m.history(deleted.uri)
    expect(kept.invite).toBeUndefined()
    expect(eventsOf(kept.events, deleted.uri)).toEqual(['create', 'verification', 'delete'])
  })
})

describe('dashboard sessions', () => {
  it('needs a signed session cookie and refuses forms from another origin', async () => {
    const node = await alice.node()
    const invite = await alice.invite(node, bob)
    await v.waitForState(bob, invite.uri, 'pending')
    const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString()
    const post = (path: string, body: string, headers: Record<string, string> = {}) =>
      fetch(`${h.service.url}${path}`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
        body,
      })
    const takedown = form({ action: 'takedownInvite', target: invite.uri, reason: 'spam', back: '/admin' })

    const anonymous = await post('/admin/action', takedown)
    expect([anonymous.status, anonymous.headers.get('location')]).toEqual([303, '/admin'])
    const forged = await post('/admin/action', takedown, { cookie: `admin_session=${Math.floor(Date.now() / 1000) + 60}.YQ.forged` })
    expect(forged.status).toBe(303)
    expect((await post('/admin/sign-in', form({ name: 'x', password: 'nope' }))).status).toBe(401)

    const signIn = await post('/admin/sign-in', form({ name: 'Robin', password: ADMIN_PASSWORD }))
    expect(signIn.status).toBe(303)
    const setCookie = signIn.headers.get('set-cookie') ?? ''
    expect(setCookie).toMatch(/HttpOnly/)
    expect(setCookie).toMatch(/SameSite=Strict/)
    const cookie = setCookie.split(';')[0] ?? ''
    const crossSite = await post('/admin/action', takedown, { cookie, origin: 'https://evil.example' })
    expect(crossSite.status).toBe(403)
    expect((await m.search({ uri: invite.uri })).invites[0]?.takedown).toBeUndefined()

    const sameSite = await post('/admin/action', takedown, { cookie, origin: h.service.url })
    expect(sameSite.status).toBe(303)
    expect((await m.search({ uri: invite.uri })).invites[0]?.takedown).toMatchObject({ actor: 'Robin', reason: 'spam' })
    // The form is held to the procedure's lexicon like the XRPC call: a block needs a DID.
    const notADid = await post('/admin/action', form({ action: 'blockInviter', target: 'nobody', reason: 'spam' }), { cookie })
    expect(notADid.status).toBe(400)
    const blocks = await m.ok<{ blocks: { did: string }[] }>('listBlockedInviters', {})
    expect(blocks.blocks.map((b) => b.did)).not.toContain('nobody')
    const page = await fetch(`${h.service.url}/admin`, { headers: { cookie } })
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'")
    expect(await page.text()).toContain('Signed in as Robin')
  })
})
