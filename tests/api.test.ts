import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  INVITE,
  LIST_COLLABORATORS,
  LIST_INVITES,
  createUser,
  startHarness,
  type Harness,
  type User,
} from './support/harness.ts'
import { views, type InviteView, type ListInvites } from './support/views.ts'

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

const expectError = (res: { status: number; body: Record<string, unknown> }, status: number, error: string) => {
  expect(res.status, JSON.stringify(res.body)).toBe(status)
  expect(res.body.error).toBe(error)
  expect(typeof res.body.message).toBe('string')
}

const unsignedJwt = (payload: Record<string, unknown>) =>
  [{ alg: 'ES256K', typ: 'JWT' }, payload].map((p) => Buffer.from(JSON.stringify(p)).toString('base64url')).join('.') + '.c2ln'

describe('service auth on listInvites', () => {
  it('requires a bearer token', async () => {
    expectError(await h.get(LIST_INVITES, { invitee: bob.did }), 401, 'AuthenticationRequired')
    const basic = await fetch(`${h.service.url}/xrpc/${LIST_INVITES}?invitee=${bob.did}`, {
      headers: { authorization: 'Basic YWRtaW46YWRtaW4=' },
    })
    expect(basic.status).toBe(401)
    expectError(await h.get(LIST_INVITES, { invitee: bob.did }, 'not.a.jwt'), 401, 'AuthenticationRequired')
  })

  it('refuses tokens for another audience or another method', async () => {
    const otherAud = await bob.token(LIST_INVITES, 'did:web:elsewhere.test')
    expectError(await h.get(LIST_INVITES, { invitee: bob.did }, otherAud), 401, 'AuthenticationRequired')
    const otherLxm = await bob.token(LIST_COLLABORATORS)
    expectError(await h.get(LIST_INVITES, { invitee: bob.did }, otherLxm), 401, 'AuthenticationRequired')
  })

  it('refuses forged signatures and issuers other than did:plc and did:web', async () => {
    const exp = Math.floor(Date.now() / 1000) + 60
    const forged = unsignedJwt({ iss: bob.did, aud: 'did:web:indexer.test', lxm: LIST_INVITES, exp })
    expectError(await h.get(LIST_INVITES, { invitee: bob.did }, forged), 401, 'AuthenticationRequired')
    const didKey = unsignedJwt({ iss: 'did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme', aud: 'did:web:indexer.test', lxm: LIST_INVITES, exp })
    const res = await h.get(LIST_INVITES, { invitee: 'did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme' }, didKey)
    expectError(res, 401, 'AuthenticationRequired')
    expect(res.body.message).toMatch(/did:plc and did:web/)
  })

  it('refuses an expired token and reuses a live one', async () => {
    const token = await bob.token(LIST_INVITES)
    for (let i = 0; i < 3; i++) expect((await h.get(LIST_INVITES, { invitee: bob.did }, token)).status).toBe(200)
    const res = await bob.agent.com.atproto.server.getServiceAuth({
      aud: 'did:web:indexer.test',
      lxm: LIST_INVITES,
      exp: Math.floor(Date.now() / 1000) + 2,
    })
    // Used while live (and so remembered), then refused once expired.
    expect((await h.get(LIST_INVITES, { invitee: bob.did }, res.data.token)).status).toBe(200)
    await new Promise((r) => setTimeout(r, 3100))
    expectError(await h.get(LIST_INVITES, { invitee: bob.did }, res.data.token), 401, 'AuthenticationRequired')
  })

  it('scopes the query to the caller', async () => {
    const node = await alice.node()
    const token = await alice.token(LIST_INVITES)
    expect((await h.get(LIST_INVITES, { invitee: alice.did }, token)).status).toBe(200)
    expect((await h.get(LIST_INVITES, { inviter: alice.did }, token)).status).toBe(200)
    expect((await h.get(LIST_INVITES, { subjectUri: node.uri }, token)).status).toBe(200)
    expect((await h.get(LIST_INVITES, { subjectUri: node.uri, invitee: bob.did }, token)).status).toBe(200)
    expectError(await h.get(LIST_INVITES, { invitee: bob.did }, token), 403, 'Forbidden')
    expectError(await h.get(LIST_INVITES, {}, token), 403, 'Forbidden')
    const carolsNode = await carol.node()
    expectError(await h.get(LIST_INVITES, { subjectUri: carolsNode.uri }, token), 403, 'Forbidden')
  })

  it('listCollaborators needs no token but refuses a bad one', async () => {
    const node = await alice.node()
    expect((await h.get(LIST_COLLABORATORS, { subjectUri: node.uri })).status).toBe(200)
    expect((await h.get(LIST_COLLABORATORS, { subjectUri: node.uri }, await bob.token(LIST_COLLABORATORS))).status).toBe(200)
    expectError(await h.get(LIST_COLLABORATORS, { subjectUri: node.uri }, 'garbage'), 401, 'AuthenticationRequired')
  })
})

describe('hostile parameters', () => {
  it('answers 400 InvalidRequest, never 500', async () => {
    const token = await bob.token(LIST_INVITES)
    const bad: Record<string, string | string[]>[] = [
      { invitee: 'not-a-did' },
      { invitee: bob.did, limit: '0' },
      { invitee: bob.did, limit: '101' },
      { invitee: bob.did, limit: 'abc' },
      { invitee: bob.did, limit: '1.5' },
      { invitee: bob.did, limit: '99999999999999999999' },
      { invitee: bob.did, state: 'bogus' },
      { invitee: [bob.did, bob.did] },
      { invitee: bob.did, cursor: 'garbage!' },
      { invitee: bob.did, cursor: Buffer.from('12|nope').toString('base64url') },
      { invitee: bob.did, cursor: 'x'.repeat(5000) },
      { invitee: bob.did, subjectUri: 'http://example.com' },
      { invitee: bob.did, subjectCollection: 'not an nsid' },
      { invitee: bob.did, inviter: "'; DROP TABLE invite; --" },
    ]
    for (const params of bad) {
      expectError(await h.get(LIST_INVITES, params, token), 400, 'InvalidRequest')
    }
    expectError(await h.get(LIST_COLLABORATORS, {}), 400, 'InvalidRequest')
    expectError(await h.get(LIST_COLLABORATORS, { subjectUri: 'nope' }), 400, 'InvalidRequest')
    expectError(await h.get(LIST_COLLABORATORS, { subjectUri: ['at://a/b/c', 'at://a/b/d'] }), 400, 'InvalidRequest')
  })

  it('answers unknown methods with 501 MethodNotImplemented, as XRPC servers do', async () => {
    expectError(await h.get('pub.chive.collaboration.nope'), 501, 'MethodNotImplemented')
    const post = await fetch(`${h.service.url}/xrpc/pub.chive.collaboration.nope`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } })
    expect(post.status).toBe(501)
    expect(((await post.json()) as { error: string }).error).toBe('MethodNotImplemented')
    // Outside /xrpc/ there are no methods: a path that is not there is 404.
    expect((await fetch(`${h.service.url}/no/such/path`)).status).toBe(404)
  })

  it('says that a method exists and which HTTP method it takes', async () => {
    // A query asked with POST: 405, the method named, Allow: GET.
    const post = await fetch(`${h.service.url}/xrpc/${LIST_COLLABORATORS}`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } })
    expect(post.status).toBe(405)
    expect(post.headers.get('allow')).toMatch(/^GET/)
    const postBody = (await post.json()) as { error: string; message: string }
    expect(postBody.error).toBe('InvalidRequest')
    expect(postBody.message).toContain(LIST_COLLABORATORS)
    expect(postBody.message).toMatch(/query: use GET/)
    // A procedure (an admin action) asked with GET: 405, Allow: POST.
    const get = await fetch(`${h.service.url}/xrpc/pub.chive.collabIndexer.admin.takedownInvite`)
    expect(get.status).toBe(405)
    expect(get.headers.get('allow')).toBe('POST')
    expect(((await get.json()) as { message: string }).message).toMatch(/procedure: use POST/)
  })
})

describe('pagination', () => {
  it('pages every invite exactly once, newest first, with equal timestamps and future dates', async () => {
    const [inviter, invitee] = await Promise.all([createUser('pgr'), createUser('pge')])
    const node = await inviter.node()
    const sameInstant = new Date().toISOString()
    const created: string[] = []
    for (let i = 0; i < 4; i++) created.push((await inviter.invite(node, invitee, { createdAt: sameInstant })).uri)
    const future = await inviter.invite(node, invitee, { createdAt: '2999-01-01T00:00:00.000Z' })
    created.push(future.uri)
    // Indexed now: it must rank by when we first saw it, so wait for that before writing newer ones.
    await v.waitForState(invitee, future.uri, 'pending')
    for (let i = 0; i < 3; i++) created.push((await inviter.invite(node, invitee)).uri)
    const accepted = created[1] as string
    await invitee.accept({ uri: accepted, cid: '' }, { uri: node.uri, cid: '' })
    const last = created[created.length - 1] as string
    await v.waitForState(invitee, last, 'pending')
    await v.waitForState(invitee, accepted, 'accepted')

    const pages: InviteView[][] = []
    let cursor: string | undefined
    let body: ListInvites
    do {
      body = await v.list(invitee, { invitee: invitee.did, limit: 3, ...(cursor ? { cursor } : {}) })
      pages.push(body.invites)
      expect(body.total).toBe(8)
      expect(body.hasMore).toBe(body.cursor !== undefined)
      cursor = body.cursor
    } while (cursor)
    const seen = pages.flat().map((i) => i.uri)
    expect(pages.map((p) => p.length)).toEqual([3, 3, 2])
    expect(new Set(seen).size).toBe(8)
    expect([...seen].sort()).toEqual([...created].sort())
    // The invites written after the far-future one come before it.
    expect(seen.indexOf(future.uri)).toBeGreaterThan(seen.indexOf(last))
    const future1 = pages.flat().find((i) => i.uri === future.uri)
    expect(future1?.createdAt).toBe('2999-01-01T00:00:00.000Z')

    const pending = await v.list(invitee, { invitee: invitee.did, state: 'pending', limit: 100 })
    expect(pending.total).toBe(7)
    expect(pending.invites.map((i) => i.uri)).not.toContain(accepted)
    const acceptedPage = await v.list(invitee, { invitee: invitee.did, state: 'accepted' })
    expect(acceptedPage.invites.map((i) => i.uri)).toEqual([accepted])
    expect(acceptedPage.total).toBe(1)
    expect(acceptedPage.hasMore).toBe(false)

    // A state filter applies before the limit: a short page is never a sign of the end.
    const onePending = await v.list(invitee, { invitee: invitee.did, state: 'accepted', limit: 1 })
    expect(onePending.invites).toHaveLength(1)
    const byCollection = await v.list(invitee, { invitee: invitee.did, subjectCollection: 'pub.chive.graph.node', limit: 1 })
    expect(byCollection.total).toBe(8)
    const otherCollection = await v.list(invitee, { invitee: invitee.did, subjectCollection: INVITE })
    expect(otherCollection.invites).toEqual([])
  })
})

describe('health', () => {
  it('reports version, relay, cursor and ingest status', async () => {
    const res = await h.get<{ version: string; cursor: number | null; relay: string; ingest: { connected: boolean } }>('_health')
    expect(res.status).toBe(200)
    expect(res.body.version).toBe('test')
    expect(res.body.relay).toBe(h.config.relayUrl)
    expect(res.body.cursor).toEqual(expect.any(Number))
    expect(res.body.ingest.connected).toBe(true)
  })
})
