import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { createUser, INVITE, NODE, pdsUrl, waitFor, type Ref, type User } from './support/harness.ts'
import {
  startJetstreamStandIn,
  V2_NSID,
  V2_SUBPROTOCOL,
  v2ErrorFrame,
  type JetstreamCommitEvent,
  type JetstreamEvent,
  type JetstreamStandIn,
  type V2Payload,
} from './support/jetstream.ts'

/**
 * The Jetstream stand-in against the real local PDS: what real writes become on v1 and v2, its
 * filters and cursors, and each of its hostile switches. Every expectation is checked against
 * what the PDS itself reports (getRecord, getLatestCommit), not against the stand-in's own view.
 */

/** A subscriber that keeps every text frame it got, raw and parsed. */
interface Client {
  ws: WebSocket
  raw: string[]
  /** Bytes of the text frames received (the payloads, as the stand-in counts them). */
  bytes: number
  /** Parsed frames; a frame that is not JSON is kept as its raw string. */
  frames: unknown[]
  closed: Promise<number>
  /** Waits for a frame (from index `from`) that `pick` maps to a value; returns it and its index. */
  next<T>(pick: (f: unknown) => T | undefined, what: string, from?: number, timeoutMs?: number): Promise<{ value: T; index: number }>
}

const open = (url: string, protocol?: string): Promise<Client> =>
  new Promise((resolve, reject) => {
    const ws = protocol ? new WebSocket(url, protocol) : new WebSocket(url)
    let closedResolve: (code: number) => void = () => {}
    const client: Client = {
      ws,
      raw: [],
      bytes: 0,
      frames: [],
      closed: new Promise<number>((r) => (closedResolve = r)),
      async next(pick, what, from = 0, timeoutMs = 10_000) {
        return waitFor(
          async () => {
            for (let i = from; i < client.frames.length; i++) {
              const value = pick(client.frames[i])
              if (value !== undefined) return { value, index: i }
            }
            return undefined
          },
          what,
          timeoutMs,
        )
      },
    }
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      expect(isBinary, 'Jetstream sends text frames').toBe(false)
      const text = data.toString('utf8')
      client.raw.push(text)
      client.bytes += data.byteLength
      try {
        client.frames.push(JSON.parse(text))
      } catch {
        client.frames.push(text)
      }
    })
    ws.on('close', (code) => closedResolve(code))
    ws.once('open', () => resolve(client))
    ws.once('error', reject)
  })

/** What an upgrade refused before the WebSocket opened answers: status and JSON body. */
const refused = (url: string, protocol?: string): Promise<{ status: number; body: unknown }> =>
  new Promise((resolve, reject) => {
    const ws = protocol ? new WebSocket(url, protocol) : new WebSocket(url)
    ws.once('open', () => {
      ws.terminate()
      reject(new Error(`${url} was accepted`))
    })
    ws.once('unexpected-response', (_req, res) => {
      let text = ''
      res.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown }))
    })
    ws.on('error', () => {})
  })

const rkeyOf = (ref: Ref): string => ref.uri.split('/')[4] as string
const collectionOf = (ref: Ref): string => ref.uri.split('/')[3] as string

const isEvent = (f: unknown): f is JetstreamEvent => typeof f === 'object' && f !== null && 'kind' in f && 'time_us' in f
/** Picks the v1 commit event of `ref` with `operation`. */
const commitOf =
  (ref: Ref, operation: 'create' | 'update' | 'delete') =>
  (f: unknown): JetstreamCommitEvent | undefined =>
    isEvent(f) && f.kind === 'commit' && f.did === ref.uri.split('/')[2] && f.commit.rkey === rkeyOf(ref) && f.commit.collection === collectionOf(ref) && f.commit.operation === operation
      ? f
      : undefined
const events = (c: Client): JetstreamEvent[] => c.frames.filter(isEvent)

const isPayload = (f: unknown): f is { $type: string; payload: V2Payload } =>
  typeof f === 'object' && f !== null && (f as { $type?: unknown }).$type === 'message'
const v2CommitOf =
  (ref: Ref, operation: string) =>
  (f: unknown): V2Payload | undefined =>
    isPayload(f) && f.payload.$type === `${V2_NSID}#commit` && f.payload.rkey === rkeyOf(ref) && f.payload.operation === operation ? f.payload : undefined

/**
 * The record as the PDS serves it, in its own JSON (read raw: the API client would turn links
 * and bytes into objects of its own).
 */
const getRecord = async (user: User, ref: Ref): Promise<{ cid: string; value: Record<string, unknown> }> => {
  const url = new URL('/xrpc/com.atproto.repo.getRecord', pdsUrl())
  url.search = new URLSearchParams({ repo: user.did, collection: collectionOf(ref), rkey: rkeyOf(ref) }).toString()
  const res = await fetch(url)
  if (!res.ok) throw new Error(`getRecord ${ref.uri}: ${res.status}`)
  return (await res.json()) as { cid: string; value: Record<string, unknown> }
}
const headRev = async (user: User): Promise<string> => (await user.agent.com.atproto.sync.getLatestCommit({ did: user.did })).data.rev

let alice: User
/** Other test files write to the same PDS: order-sensitive subscriptions follow this file's repo only. */
const onlyAlice = (): string => `wantedDids=${encodeURIComponent(alice.did)}`
let bob: User
let js: JetstreamStandIn
const clients: Client[] = []
const track = async (c: Promise<Client>): Promise<Client> => {
  const client = await c
  clients.push(client)
  return client
}

beforeAll(async () => {
  ;[alice, bob] = await Promise.all([createUser('alice'), createUser('bob')])
})

afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.terminate()
  await js?.close()
})

describe('v1 /subscribe from real writes', () => {
  it('a create, update and delete of an invite give the events the PDS’s records and commits show', async () => {
    js = await startJetstreamStandIn({ pdsUrl: pdsUrl() })
    const c = await track(open(`${js.url}/subscribe?wantedCollections=pub.chive.*&${onlyAlice()}`))
    const subject = await alice.node('jetstream subject')
    // CID links and bytes must come out in ATProto JSON form, as getRecord gives them.
    const invite = await alice.invite(subject, bob, { proof: { $bytes: 'aGVsbG8gd29ybGQ' }, anchor: { $link: subject.cid } })

    const created = (await c.next(commitOf(invite, 'create'), 'the invite’s create')).value
    const stored = await getRecord(alice, invite)
    expect(created.commit.cid).toBe(stored.cid)
    expect(created.commit.cid).toBe(invite.cid)
    expect(created.commit.record).toEqual(stored.value)
    expect(created.commit.record?.anchor).toEqual({ $link: subject.cid })
    expect(created.commit.record?.proof).toEqual(stored.value.proof)
    expect(created.commit.rev).toBe(await headRev(alice))
    expect(created).toMatchObject({ did: alice.did, kind: 'commit', commit: { collection: INVITE, rkey: rkeyOf(invite) } })

    const updated = await alice.put(invite.uri, { subject, invitee: bob.did, role: 'editor', createdAt: new Date().toISOString() })
    const upd = (await c.next(commitOf(invite, 'update'), 'the invite’s update')).value
    const storedAfter = await getRecord(alice, invite)
    expect(upd.commit.cid).toBe(storedAfter.cid)
    expect(upd.commit.cid).toBe(updated.cid)
    expect(upd.commit.cid).not.toBe(created.commit.cid)
    expect(upd.commit.record).toEqual(storedAfter.value)
    expect(upd.commit.record?.role).toBe('editor')
    expect(upd.commit.rev).toBe(await headRev(alice))

    await alice.delete(invite.uri)
    const del = (await c.next(commitOf(invite, 'delete'), 'the invite’s delete')).value
    expect(Object.keys(del.commit).sort()).toEqual(['collection', 'operation', 'rev', 'rkey'])
    expect(del.commit.rev).toBe(await headRev(alice))
    await expect(getRecord(alice, invite)).rejects.toThrow()

    // The subject's create came first; time_us strictly increases across everything sent.
    const all = events(c)
    expect(all.map((e) => (e.kind === 'commit' ? `${e.commit.collection}:${e.commit.operation}` : e.kind))).toEqual([
      `${NODE}:create`,
      `${INVITE}:create`,
      `${INVITE}:update`,
      `${INVITE}:delete`,
    ])
    for (let i = 1; i < all.length; i++) expect((all[i] as JetstreamEvent).time_us).toBeGreaterThan((all[i - 1] as JetstreamEvent).time_us)
    expect(Math.abs((all[0] as JetstreamEvent).time_us / 1000 - Date.now())).toBeLessThan(60_000)
  })

  it('a commit of several ops gives one event per op, all with the commit’s rev', async () => {
    js = await startJetstreamStandIn({ pdsUrl: pdsUrl() })
    const c = await track(open(`${js.url}/subscribe`))
    const subject = await alice.node()
    await c.next(commitOf(subject, 'create'), 'the subject')
    const res = await alice.agent.com.atproto.repo.applyWrites({
      repo: alice.did,
      validate: false,
      writes: [
        { $type: 'com.atproto.repo.applyWrites#create', collection: INVITE, rkey: 'multia', value: { $type: INVITE, subject, invitee: bob.did, role: 'a', createdAt: new Date().toISOString() } },
        { $type: 'com.atproto.repo.applyWrites#create', collection: INVITE, rkey: 'multib', value: { $type: INVITE, subject, invitee: bob.did, role: 'b', createdAt: new Date().toISOString() } },
        { $type: 'com.atproto.repo.applyWrites#delete', collection: NODE, rkey: rkeyOf(subject) },
      ],
    })
    const rev = res.data.commit?.rev
    expect(rev).toBeDefined()
    const a = await c.next(commitOf({ uri: `at://${alice.did}/${INVITE}/multia`, cid: '' }, 'create'), 'op 1')
    const b = await c.next(commitOf({ uri: `at://${alice.did}/${INVITE}/multib`, cid: '' }, 'create'), 'op 2')
    const d = await c.next(commitOf(subject, 'delete'), 'op 3')
    expect([a.value.commit.rev, b.value.commit.rev, d.value.commit.rev]).toEqual([rev, rev, rev])
    expect([a.index, b.index, d.index]).toEqual([a.index, a.index + 1, a.index + 2])
    expect(a.value.commit.record?.role).toBe('a')
    expect(b.value.time_us).toBeGreaterThan(a.value.time_us)
  })

  it('wantedCollections (exact and prefix.*) filter commits only; wantedDids filter every kind', async () => {
    js = await startJetstreamStandIn({ pdsUrl: pdsUrl() })
    const [chive, all, invitesOnly, bobsOnly] = await Promise.all([
      track(open(`${js.url}/subscribe?wantedCollections=pub.chive.*`)),
      track(open(`${js.url}/subscribe`)),
      track(open(`${js.url}/subscribe?wantedCollections=${INVITE}`)),
      track(open(`${js.url}/subscribe?wantedDids=${encodeURIComponent(bob.did)}`)),
    ])
    const like = await alice.create('app.bsky.feed.like', { subject: { uri: `at://${bob.did}/${NODE}/x`, cid: 'bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm' }, createdAt: new Date().toISOString() })
    const subject = await alice.node()
    const invite = await alice.invite(subject, bob)
    // A newcomer's identity and account events reach every subscriber (wantedCollections aside).
    const carol = await createUser('carol')
    const barrier = await bob.node('barrier')
    for (const c of [chive, all, invitesOnly]) await c.next(commitOf(invite, 'create'), 'the invite')
    for (const c of [chive, all, bobsOnly]) await c.next(commitOf(barrier, 'create'), 'bob’s barrier')
    await invitesOnly.next((f) => (isEvent(f) && f.kind === 'account' && f.did === carol.did ? f : undefined), 'carol’s account event')
    // The barrier came after everything else on the same firehose: what is missing now was filtered.
    await all.next(commitOf(barrier, 'create'), 'the barrier')

    expect(all.frames.some(commitOf(like, 'create'))).toBe(true)
    expect(chive.frames.some(commitOf(like, 'create')), 'an app.bsky record passed pub.chive.*').toBe(false)
    expect(chive.frames.some(commitOf(subject, 'create'))).toBe(true)
    expect(invitesOnly.frames.some(commitOf(subject, 'create')), 'a graph node passed the exact invite collection').toBe(false)
    for (const c of [chive, all, invitesOnly]) {
      const identity = events(c).find((e) => e.kind === 'identity' && e.did === carol.did)
      expect(identity, 'identity events ignore wantedCollections').toMatchObject({ kind: 'identity', identity: { did: carol.did } })
      expect(events(c).some((e) => e.kind === 'account' && e.did === carol.did && e.account.active)).toBe(true)
    }
    expect(events(bobsOnly).length).toBeGreaterThan(0)
    expect(events(bobsOnly).every((e) => e.did === bob.did), 'wantedDids let another repo through').toBe(true)
  })

  it('identity (handle change) and account (deactivate/activate) events carry the firehose’s fields', async () => {
    js = await startJetstreamStandIn({ pdsUrl: pdsUrl() })
    const dave = await createUser('dave')
    const c = await track(open(`${js.url}/subscribe?wantedDids=${encodeURIComponent(dave.did)}&wantedCollections=pub.chive.*`))
    const handle = `x${dave.handle}`
    await dave.agent.com.atproto.identity.updateHandle({ handle })
    const identity = await c.next((f) => (isEvent(f) && f.kind === 'identity' && f.identity.handle === handle ? f : undefined), 'the new handle')
    expect(identity.value.identity.did).toBe(dave.did)
    expect(typeof identity.value.identity.seq).toBe('number')
    expect(Date.parse(identity.value.identity.time)).not.toBeNaN()
    await dave.agent.com.atproto.server.deactivateAccount({})
    const off = await c.next((f) => (isEvent(f) && f.kind === 'account' && !f.account.active ? f : undefined), 'the deactivation')
    expect(off.value.account).toMatchObject({ did: dave.did, active: false, status: 'deactivated' })
    await dave.agent.com.atproto.server.activateAccount()
    const on = await c.next((f) => (isEvent(f) && f.kind === 'account' && f.account.active ? f : undefined), 'the activation', off.index)
    expect(on.value.account.seq).toBeGreaterThan(off.value.account.seq)
    expect(events(c).some((e) => e.kind === 'sync'), 'v1 has no sync kind').toBe(false)
  })

  it('a cursor replays from the first event at or after it, then goes live; an expired one starts at the oldest retained', async () => {
    js = await startJetstreamStandIn({ pdsUrl: pdsUrl() })
    const first = await track(open(`${js.url}/subscribe?wantedCollections=pub.chive.*&${onlyAlice()}`))
    const subject = await alice.node()
    const a = await alice.invite(subject, bob)
    const b = await alice.invite(subject, bob)
    const evA = (await first.next(commitOf(a, 'create'), 'invite a')).value
    const evB = (await first.next(commitOf(b, 'create'), 'invite b')).value
    first.ws.close()
    await first.closed
    const c = await alice.invite(subject, bob) // written while nobody listens

    const resumed = await track(open(`${js.url}/subscribe?wantedCollections=pub.chive.*&${onlyAlice()}&cursor=${evA.time_us}`))
    expect(js.queries.at(-1)?.get('cursor')).toBe(String(evA.time_us))
    const evC = await resumed.next(commitOf(c, 'create'), 'invite c, written while disconnected')
    expect(events(resumed).slice(0, 3)).toEqual([evA, evB, evC.value])
    // Then live.
    const d = await alice.invite(subject, bob)
    await resumed.next(commitOf(d, 'create'), 'invite d, live')

    // Retention ran out before b: a cursor at a now starts, silently, at b.
    js.forget(evB.time_us)
    const late = await track(open(`${js.url}/subscribe?wantedCollections=pub.chive.*&${onlyAlice()}&cursor=${evA.time_us}`))
    await late.next(commitOf(d, 'create'), 'the replay to reach d')
    expect(events(late)[0]).toEqual(evB)
    expect(late.frames.some(commitOf(a, 'create'))).toBe(false)
    // No cursor: live only.
    const live = await track(open(`${js.url}/subscribe?wantedCollections=pub.chive.*&${onlyAlice()}`))
    const e = await alice.invite(subject, bob)
    await live.next(commitOf(e, 'create'), 'invite e')
    expect(events(live).length).toBe(1)
  })
})

describe('the PDS backlog', () => {
  it('pdsCursor translates what the PDS sequenced before the stand-in started', async () => {
    js = await startJetstreamStandIn({ pdsUrl: pdsUrl() })
    const watch = await track(open(`${js.url}/subscribe`))
    const frank = await createUser('frank')
    const identity = await watch.next((f) => (isEvent(f) && f.kind === 'identity' && f.did === frank.did ? f : undefined), 'frank’s identity')
    const invite = await frank.invite(await frank.node(), alice)
    await watch.next(commitOf(invite, 'create'), 'frank’s invite')
    await js.close()

    // A new stand-in, started after all of it, from just before frank's first event.
    js = await startJetstreamStandIn({ pdsUrl: pdsUrl(), pdsCursor: identity.value.identity.seq - 1 })
    const c = await track(open(`${js.url}/subscribe?cursor=0&wantedDids=${encodeURIComponent(frank.did)}`))
    const created = await c.next(commitOf(invite, 'create'), 'the invite from the backlog')
    expect(events(c)[0]).toMatchObject({ kind: 'identity', identity: { did: frank.did, seq: identity.value.identity.seq } })
    expect(created.value.commit.cid).toBe(invite.cid)
    // Its time_us is when this stand-in read it, not when the PDS sequenced it.
    expect(created.value.time_us).toBeGreaterThan(identity.value.time_us)
  })
})

describe('v2 subscribeEvents', () => {
  it('frames real writes as messages with seq, time and time_us; seq and time cursors replay inclusively', async () => {
    js = await startJetstreamStandIn({ pdsUrl: pdsUrl(), v2: true })
    const url = `${js.url}/xrpc/${V2_NSID}?collections=pub.chive.*`
    const c = await track(open(url, V2_SUBPROTOCOL))
    expect(c.ws.protocol).toBe(V2_SUBPROTOCOL)
    const subject = await alice.node()
    const invite = await alice.invite(subject, bob)
    const p = (await c.next(v2CommitOf(invite, 'create'), 'the v2 create')).value
    const stored = await getRecord(alice, invite)
    expect(p).toMatchObject({ did: alice.did, collection: INVITE, rkey: rkeyOf(invite), cid: stored.cid, record: stored.value, rev: await headRev(alice) })
    expect(Object.keys(c.frames.find(isPayload) ?? {}).sort()).toEqual(['$type', 'payload'])
    expect(Date.parse(p.time)).not.toBeNaN()
    expect(p.time_us).toBeGreaterThan(1e15)
    await alice.delete(invite.uri)
    const del = (await c.next(v2CommitOf(invite, 'delete'), 'the v2 delete')).value
    expect(del.seq).toBeGreaterThan(p.seq)
    expect('cid' in del || 'record' in del).toBe(false)

    const bySeq = await track(open(`${url}&cursor=${p.seq}`, V2_SUBPROTOCOL))
    await bySeq.next(v2CommitOf(invite, 'delete'), 'the seq replay')
    expect((bySeq.frames[0] as { payload: V2Payload }).payload).toEqual(p)
    const byTime = await track(open(`${url}&cursor=${p.time_us}`, V2_SUBPROTOCOL))
    await byTime.next(v2CommitOf(invite, 'delete'), 'the time replay')
    expect((byTime.frames[0] as { payload: V2Payload }).payload).toEqual(p)

    // kinds: only identity/account; a newcomer's events arrive, the invite's do not.
    const v1 = await track(open(`${js.url}/subscribe`))
    const kinds = await track(open(`${js.url}/xrpc/${V2_NSID}?kinds=identity&kinds=account&cursor=1`, V2_SUBPROTOCOL))
    const erin = await createUser('erin')
    await kinds.next((f) => (isPayload(f) && f.payload.$type === `${V2_NSID}#account` && f.payload.did === erin.did ? f : undefined), 'erin’s #account')
    expect(kinds.frames.some((f) => isPayload(f) && f.payload.$type === `${V2_NSID}#identity` && f.payload.did === erin.did)).toBe(true)
    expect(kinds.frames.some((f) => isPayload(f) && f.payload.$type.endsWith('#commit'))).toBe(false)

    // #sync exists on v2 only: the PDS emits one for a new account, and one is injected.
    const real = await c.next((f) => (isPayload(f) && f.payload.$type === `${V2_NSID}#sync` && f.payload.did === erin.did ? f.payload : undefined), 'erin’s #sync')
    expect(real.value.rev).toBe(await headRev(erin))
    const sync = js.inject({ did: alice.did, kind: 'sync', sync: { did: alice.did, rev: 'rev1', seq: 1, time: new Date().toISOString() } })
    const syncFrame = await c.next((f) => (isPayload(f) && f.payload.$type === `${V2_NSID}#sync` && f.payload.did === alice.did ? f.payload : undefined), 'the injected #sync')
    expect(syncFrame.value).toMatchObject({ did: alice.did, rev: 'rev1', time_us: sync.time_us })
    const marker = js.inject({ did: alice.did, kind: 'identity', identity: { did: alice.did, seq: 2, time: new Date().toISOString() } })
    await v1.next((f) => (isEvent(f) && f.time_us === marker.time_us ? f : undefined), 'the marker after the sync')
    expect(events(v1).some((e) => e.kind === 'sync')).toBe(false)
  })

  it('refuses with HTTP 400 before the upgrade: CursorTooOld past retention, a missing subprotocol, an unknown kind', async () => {
    js = await startJetstreamStandIn({ pdsUrl: pdsUrl(), v2: true })
    const c = await track(open(`${js.url}/xrpc/${V2_NSID}`, V2_SUBPROTOCOL))
    const subject = await alice.node()
    const invite = await alice.invite(subject, bob)
    const p = (await c.next(v2CommitOf(invite, 'create'), 'the invite')).value
    // Nothing forgotten yet: an early cursor is fine.
    await track(open(`${js.url}/xrpc/${V2_NSID}?cursor=1`, V2_SUBPROTOCOL))
    js.forget(p.time_us + 1)
    for (const cursor of [p.seq, p.time_us]) {
      const r = await refused(`${js.url}/xrpc/${V2_NSID}?cursor=${cursor}`, V2_SUBPROTOCOL)
      expect(r.status).toBe(400)
      expect(r.body).toMatchObject({ error: 'CursorTooOld', message: expect.any(String) })
    }
    expect((await refused(`${js.url}/xrpc/${V2_NSID}`)).status).toBe(400)
    expect((await refused(`${js.url}/xrpc/${V2_NSID}?kinds=posts`, V2_SUBPROTOCOL)).body).toMatchObject({ error: 'InvalidRequest' })
    // v1 keeps starting silently at the oldest retained event.
    await track(open(`${js.url}/subscribe?cursor=${p.time_us}`))
    expect(js.queries.map((q) => q.get('cursor'))).toEqual([null, '1', String(p.seq), String(p.time_us), null, null, String(p.time_us)])
  })

  it('retentionMs forgets on its own; without v2 the endpoint is a 404', async () => {
    js = await startJetstreamStandIn({ pdsUrl: pdsUrl(), v2: true, retentionMs: 300 })
    const c = await track(open(`${js.url}/xrpc/${V2_NSID}`, V2_SUBPROTOCOL))
    const subject = await alice.node()
    const p = (await c.next(v2CommitOf(subject, 'create'), 'the subject')).value
    expect(js.retained().some((r) => r.seq === p.seq)).toBe(true)
    await new Promise((r) => setTimeout(r, 400))
    expect(js.retained().some((r) => r.seq === p.seq)).toBe(false)
    expect((await refused(`${js.url}/xrpc/${V2_NSID}?cursor=${p.seq}`, V2_SUBPROTOCOL)).body).toMatchObject({ error: 'CursorTooOld' })
    await js.close()

    js = await startJetstreamStandIn({ pdsUrl: pdsUrl() })
    expect((await refused(`${js.url}/xrpc/${V2_NSID}`, V2_SUBPROTOCOL)).status).toBe(404)
    expect((await refused(`${js.url}/nowhere`)).status).toBe(404)
  })
})

describe('hostile and unreliable modes', () => {
  it('tamper alters or drops the next matching event, for everyone and on replays; the original is reported', async () => {
    js = await startJetstreamStandIn({ pdsUrl: pdsUrl() })
    const c = await track(open(`${js.url}/subscribe?wantedCollections=pub.chive.*&${onlyAlice()}`))
    const subject = await alice.node()
    const isInviteCreate = (e: JetstreamEvent) => e.did === alice.did && e.kind === 'commit' && e.commit.collection === INVITE && e.commit.operation === 'create'
    const altered = js.tamper(isInviteCreate, (e) =>
      e.kind === 'commit' && e.commit.record ? { ...e, commit: { ...e.commit, record: { ...e.commit.record, role: 'owner' } } } : e,
    )
    const a = await alice.invite(subject, bob)
    const original = await altered
    expect(original.kind === 'commit' && original.commit.record).toEqual((await getRecord(alice, a)).value)
    const seen = (await c.next(commitOf(a, 'create'), 'the altered invite')).value
    expect(seen.commit.record?.role).toBe('owner')
    expect(seen.commit.cid).toBe(a.cid) // only the content lies
    expect(seen.time_us).toBe(original.time_us)

    const dropped = js.tamper(isInviteCreate, () => null)
    const b = await alice.invite(subject, bob)
    const after = await alice.invite(subject, bob)
    expect((await dropped).kind).toBe('commit')
    await c.next(commitOf(after, 'create'), 'the invite after the dropped one')
    expect(c.frames.some(commitOf(b, 'create')), 'the dropped invite was delivered').toBe(false)
    expect(js.stats).toMatchObject({ altered: 1, dropped: 1 })

    const replay = await track(open(`${js.url}/subscribe?wantedCollections=pub.chive.*&${onlyAlice()}&cursor=0`))
    await replay.next(commitOf(after, 'create'), 'the replay')
    expect(events(replay)).toEqual(events(c))
  })

  it('inject invents events (a create the PDS never saw, a delete of a live record) that are delivered and replayed', async () => {
    js = await startJetstreamStandIn({ pdsUrl: pdsUrl() })
    const c = await track(open(`${js.url}/subscribe?wantedCollections=pub.chive.*&${onlyAlice()}`))
    const subject = await alice.node()
    const real = (await c.next(commitOf(subject, 'create'), 'the subject')).value
    const ghost = js.inject({
      did: alice.did,
      kind: 'commit',
      commit: { rev: real.commit.rev, operation: 'create', collection: INVITE, rkey: 'ghost', cid: real.commit.cid as string, record: { $type: INVITE, role: 'never' } },
    })
    const fakeDelete = js.inject({ did: alice.did, kind: 'commit', commit: { rev: real.commit.rev, operation: 'delete', collection: NODE, rkey: rkeyOf(subject) } })
    expect(ghost.time_us).toBeGreaterThan(real.time_us)
    expect(fakeDelete.time_us).toBeGreaterThan(ghost.time_us)
    await c.next((f) => (isEvent(f) && f.time_us === fakeDelete.time_us ? f : undefined), 'the injected delete')
    expect(events(c).slice(-2)).toEqual([ghost, fakeDelete])
    expect(js.stats.injected).toBe(2)
    // The subject is still on the PDS: the delete is a lie.
    expect((await getRecord(alice, subject)).cid).toBe(subject.cid)
    const replay = await track(open(`${js.url}/subscribe?wantedCollections=pub.chive.*&${onlyAlice()}&cursor=${ghost.time_us}`))
    await replay.next((f) => (isEvent(f) && f.time_us === fakeDelete.time_us ? f : undefined), 'the replayed injection')
    expect(events(replay)).toEqual([ghost, fakeDelete])

    js.sendRaw('{"did": not json')
    await c.next((f) => (f === '{"did": not json' ? f : undefined), 'the garbage frame')
    expect(js.stats.injected).toBe(3)
  })

  it('stall holds everything with the connection open and sends it in order on release', async () => {
    js = await startJetstreamStandIn({ pdsUrl: pdsUrl() })
    const c = await track(open(`${js.url}/subscribe?wantedCollections=pub.chive.*&${onlyAlice()}`))
    js.stall(true)
    const subject = await alice.node()
    const invite = await alice.invite(subject, bob)
    await waitFor(async () => js.retained().some((r) => r.event.kind === 'commit' && r.event.commit.rkey === rkeyOf(invite)), 'the invite to reach the stand-in')
    await new Promise((r) => setTimeout(r, 300))
    expect(c.frames).toEqual([])
    expect(c.ws.readyState).toBe(WebSocket.OPEN)
    expect(js.connected()).toBe(1)
    js.stall(false)
    const inv = await c.next(commitOf(invite, 'create'), 'the held invite')
    expect(c.frames.findIndex(commitOf(subject, 'create'))).toBe(inv.index - 1)
  })

  it('disconnectAll closes every subscriber abruptly; a reconnect with a cursor misses nothing', async () => {
    js = await startJetstreamStandIn({ pdsUrl: pdsUrl(), v2: true })
    const [v1, v2] = await Promise.all([track(open(`${js.url}/subscribe?${onlyAlice()}`)), track(open(`${js.url}/xrpc/${V2_NSID}`, V2_SUBPROTOCOL))])
    const subject = await alice.node()
    const last = (await v1.next(commitOf(subject, 'create'), 'the subject')).value
    await v2.next(v2CommitOf(subject, 'create'), 'the subject on v2')
    js.disconnectAll()
    expect(await v1.closed).toBe(1006)
    expect(await v2.closed).toBe(1006)
    await waitFor(async () => js.connected() === 0, 'the stand-in to drop its subscribers')
    const invite = await alice.invite(subject, bob)
    const again = await track(open(`${js.url}/subscribe?${onlyAlice()}&cursor=${last.time_us}`))
    await again.next(commitOf(invite, 'create'), 'the invite written while disconnected')
    expect(events(again)[0]).toEqual(last)
    expect(js.stats.connections).toBe(3)
  })

  it('bytesSent and eventsSent count exactly what subscribers received', async () => {
    js = await startJetstreamStandIn({ pdsUrl: pdsUrl(), v2: true })
    const [v1, v2] = await Promise.all([track(open(`${js.url}/subscribe?wantedCollections=pub.chive.*&${onlyAlice()}`)), track(open(`${js.url}/xrpc/${V2_NSID}?dids=${encodeURIComponent(alice.did)}`, V2_SUBPROTOCOL))])
    const subject = await alice.node()
    const invite = await alice.invite(subject, bob, { note: 'ünïcödé counts in bytes, not characters' })
    await alice.create('app.bsky.feed.post', { text: 'not chive', createdAt: new Date().toISOString() })
    await v1.next(commitOf(invite, 'create'), 'the invite on v1')
    js.sendRaw('garbage', 'v2')
    await v2.next((f) => (f === 'garbage' ? f : undefined), 'the garbage on v2')
    js.sendRaw(v2ErrorFrame('ConsumerTooSlow', 'you are slow'), 'v2')
    await v2.next((f) => (typeof f === 'object' && f !== null && (f as { $type?: unknown }).$type === 'error' ? f : undefined), 'the v2 error frame')
    expect(v2.frames.at(-1)).toEqual({ $type: 'error', error: 'ConsumerTooSlow', message: 'you are slow' })
    expect(v1.raw.includes('garbage')).toBe(false)
    await waitFor(async () => v1.raw.length + v2.raw.length === js.stats.eventsSent, 'every frame sent to arrive')
    expect(js.stats.bytesSent).toBe(v1.bytes + v2.bytes)
    expect(v1.bytes).toBeGreaterThan(v1.raw.join('').length) // multi-byte characters
    expect(js.stats.upstreamFrames).toBeGreaterThanOrEqual(3)
    expect(js.stats.connections).toBe(2)
  })
})
