import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { inject } from 'vitest'
import { normaliseRelayUrl } from '../src/config.ts'
import { createIdResolver, createProofFetch } from '../src/atproto/identity.ts'
import { TransientError } from '../src/atproto/host.ts'
import { RepoKeys } from '../src/atproto/keys.ts'
import { proveSubject } from '../src/atproto/record-proof.ts'
import { KeyedLimiter } from '../src/lib/limits.ts'
import { NODE, createUser, pdsUrl, startHarness, waitFor, type Harness, type Ref, type User } from './support/harness.ts'
import { startFaultProxy, startPlcFront, type FaultProxy } from './support/fault-proxy.ts'
import { markSeq } from './support/replay-relay.ts'
import { views } from './support/views.ts'

let h: Harness
let v: ReturnType<typeof views>
let proxy: FaultProxy
let plcFront: { url: string; close(): Promise<void> }
let alice: User
let bob: User
/** Subjects written before the service's start cursor: only a proof from the PDS can vouch for them. */
let before: Ref[]

beforeAll(async () => {
  ;[alice, bob] = await Promise.all([createUser('alice'), createUser('bob')])
  before = []
  for (let i = 0; i < 4; i++) before.push(await alice.node(`written before the service started ${i}`))
  const startSeq = await markSeq(normaliseRelayUrl(pdsUrl()), alice)
  proxy = await startFaultProxy(pdsUrl())
  plcFront = await startPlcFront(inject('plcUrl'), pdsUrl(), proxy.url)
  h = await startHarness({ startCursor: startSeq, plcUrl: plcFront.url })
  v = views(h)
})
afterAll(async () => {
  await h?.stop()
  await proxy?.close()
  await plcFront?.close()
})

interface Verification {
  verification: string
  verification_reason: string | null
}
const verificationOf = async (uri: string): Promise<Verification | undefined> =>
  (await h.service.pool.query<Verification>('SELECT verification, verification_reason FROM invite WHERE uri = $1', [uri])).rows[0]

const settled = (uri: string) =>
  waitFor(async () => {
    const row = await verificationOf(uri)
    return row && row.verification !== 'pending' ? row : undefined
  }, `${uri} to be verified or refuted`)

describe('subject proofs from the inviter’s PDS', () => {
  it('verifies a genuine subject the stream never showed, and lists the invite', async () => {
    const subject = before[0] as Ref
    const invite = await alice.invite(subject, bob)
    await v.waitForState(bob, invite.uri, 'pending')
    expect(await verificationOf(invite.uri)).toEqual({
      verification: 'verified',
      verification_reason: "subject proven from the inviter's signed repo",
    })
    expect(proxy.seen.up).toBeGreaterThan(0)
  })

  it('never lists an invite to a subject that never existed', async () => {
    const ghost = { uri: `at://${alice.did}/${NODE}/3ghostrecord2`, cid: (before[0] as Ref).cid }
    const invite = await alice.invite(ghost, bob)
    expect((await settled(invite.uri)).verification).toBe('subject-missing')
    expect(await v.find(bob, invite.uri)).toBeUndefined()
  })

  it('never lists an invite naming a CID the subject never had, proven or seen', async () => {
    const unseen = await alice.invite({ uri: (before[1] as Ref).uri, cid: (before[2] as Ref).cid }, bob)
    const seenNode = await alice.node('created while the service runs')
    const seen = await alice.invite({ uri: seenNode.uri, cid: (before[2] as Ref).cid }, bob)
    const refused = await settled(unseen.uri)
    expect(refused.verification).toBe('cid-mismatch')
    expect(refused.verification_reason).toContain((before[1] as Ref).cid)
    expect((await settled(seen.uri)).verification).toBe('cid-mismatch')
    await v.barrier(alice, bob)
    expect(await v.find(bob, unseen.uri)).toBeUndefined()
    expect(await v.find(bob, seen.uri)).toBeUndefined()
  })

  it('refuses subjects that are not Chive records', async () => {
    const post = await alice.create('app.bsky.feed.post', { text: 'hi', createdAt: new Date().toISOString() })
    const invite = await alice.invite(post, bob)
    expect((await settled(invite.uri)).verification).toBe('not-chive-record')
    expect(await v.find(bob, invite.uri)).toBeUndefined()
  })

  it('keeps listing an invite when its subject is edited, and accepts invites to the earlier version', async () => {
    const node = await alice.node('v1')
    const invite = await alice.invite(node, bob)
    await bob.accept(invite, node)
    await v.waitForState(bob, invite.uri, 'accepted')
    const edited = await alice.put(node.uri, { title: 'v2', createdAt: new Date().toISOString() })
    expect(edited.cid).not.toBe(node.cid)
    const late = await alice.invite(node, bob)
    await v.waitForState(bob, late.uri, 'pending')
    expect((await v.find(bob, invite.uri))?.state).toBe('accepted')
    expect((await v.collaborators(node.uri)).map((c) => c.did)).toEqual([bob.did])
  })

  it('drops invites and collaboration at once when the subject is deleted, and a recreated subject does not revive them', async () => {
    const node = await alice.node('doomed')
    const invite = await alice.invite(node, bob)
    await bob.accept(invite, node)
    await v.waitForState(bob, invite.uri, 'accepted')
    await alice.delete(node.uri)
    await waitFor(async () => (await v.find(bob, invite.uri)) === undefined, 'the invite to leave the inbox')
    expect(await v.collaborators(node.uri)).toEqual([])
    expect((await verificationOf(invite.uri))?.verification).toBe('subject-deleted')

    const rkey = node.uri.split('/').pop() as string
    const again = await alice.create(NODE, { title: 'reborn', createdAt: new Date().toISOString() }, rkey)
    expect(again.uri).toBe(node.uri)
    await v.barrier(alice, bob)
    expect(await v.find(bob, invite.uri)).toBeUndefined()
    expect(await v.collaborators(node.uri)).toEqual([])
    // An invite to the old version stays refused; one to the new version is fine.
    const stale = await alice.invite(node, bob)
    const fresh = await alice.invite(again, bob)
    await v.waitForState(bob, fresh.uri, 'pending')
    expect((await settled(stale.uri)).verification).toBe('cid-mismatch')
  })

  it('lists the invite once an unreachable or rate-limiting PDS comes back, without a restart', async () => {
    proxy.mode = 'down'
    const invite = await alice.invite(before[3] as Ref, bob)
    await waitFor(async () => {
      const q = await h.service.pool.query('SELECT attempts, last_error FROM verify_queue WHERE invite_uri = $1', [invite.uri])
      return (q.rows[0]?.attempts ?? 0) >= 2 ? true : undefined
    }, 'failed attempts to be recorded')
    const health = await h.get<{ verificationQueue: { depth: number; oldestAgeSeconds: number } }>('_health')
    expect(health.body.verificationQueue.depth).toBeGreaterThanOrEqual(1)
    expect(health.body.verificationQueue.oldestAgeSeconds).toBeGreaterThan(0)
    expect(await v.find(bob, invite.uri)).toBeUndefined()
    expect((await verificationOf(invite.uri))?.verification).toBe('pending')

    proxy.mode = 'rate-limited'
    await waitFor(async () => proxy.seen['rate-limited'] > 0, 'a rate-limited attempt')
    const queued = await h.service.pool.query(
      'SELECT extract(epoch FROM next_attempt_at - now()) AS wait FROM verify_queue WHERE invite_uri = $1',
      [invite.uri],
    )
    // Retry-After: 1 is honoured even though the test backoff is 50 ms.
    expect(Number(queued.rows[0]?.wait)).toBeGreaterThan(0.5)

    proxy.mode = 'up'
    await v.waitForState(bob, invite.uri, 'pending')
    type Status = { ingest: { verification: { retries: Record<string, number>; outcomes: Record<string, number> } } }
    const status = await waitFor(async () => {
      const s = (await h.get<Status>('_health')).body.ingest.verification
      return s.retries['rate-limited'] ? s : undefined
    }, 'health to report the retries')
    expect(status.retries.unreachable).toBeGreaterThanOrEqual(2)
    expect(status.outcomes.verified).toBeGreaterThanOrEqual(2)
  })
})

describe('the verification queue', () => {
  it('survives a restart: an invite queued while the PDS is down is listed after both come back', async () => {
    // Forget the proof an earlier test fetched, so that this invite needs the PDS again.
    const subject = before[0] as Ref
    await h.service.pool.query('DELETE FROM subject_version WHERE uri = $1', [subject.uri])
    await h.service.pool.query('DELETE FROM subject_record WHERE uri = $1', [subject.uri])
    proxy.mode = 'unavailable'
    const invite = await alice.invite(subject, bob)
    await waitFor(async () => {
      const q = await h.service.pool.query('SELECT attempts FROM verify_queue WHERE invite_uri = $1', [invite.uri])
      return (q.rows[0]?.attempts ?? 0) >= 1 ? true : undefined
    }, 'a failed attempt')
    await h.restart()
    expect(await v.find(bob, invite.uri)).toBeUndefined()
    proxy.mode = 'up'
    await v.waitForState(bob, invite.uri, 'pending')
  })

  it('limits proof fetches per PDS host without holding up other hosts', async () => {
    const limiter = new KeyedLimiter(2)
    let active = 0
    let peak = 0
    const task = (ms: number) => async () => {
      active++
      peak = Math.max(peak, active)
      await new Promise((r) => setTimeout(r, ms))
      active--
    }
    const slow = Array.from({ length: 8 }, () => limiter.run('slow.example', task(40)))
    const started = Date.now()
    await limiter.run('other.example', async () => {})
    expect(Date.now() - started).toBeLessThan(30)
    await Promise.all(slow)
    expect(peak).toBe(2)
  })
})

describe('the proof client', () => {
  let server: http.Server
  let redirector: http.Server
  let base: string
  let redirecting: string
  let landings = 0
  const listen = async (handler: http.RequestListener) => {
    const s = http.createServer(handler)
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()))
    return { s, url: `http://127.0.0.1:${(s.address() as AddressInfo).port}` }
  }
  beforeAll(async () => {
    ;({ s: server, url: base } = await listen((req, res) => {
      // Where the redirector points: followed, it would answer "no such record".
      if (req.url?.startsWith('/landing')) {
        landings++
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'RecordNotFound', message: 'no' }))
      } else res.writeHead(200, { 'content-type': 'application/vnd.ipld.car' }).end(Buffer.alloc(2 * 1024 * 1024))
    }))
    ;({ s: redirector, url: redirecting } = await listen((_req, res) => res.writeHead(302, { location: `${base}/landing` }).end()))
  })
  afterAll(async () => {
    for (const s of [server, redirector]) await new Promise<void>((resolve) => s.close(() => resolve()))
  })

  // Never asked: nothing here gets as far as a signature.
  const keys = new RepoKeys(createIdResolver({ plcUrl: inject('plcUrl'), allowPrivateNetwork: true }))
  const req = (pds: string) => ({ pds, did: 'did:plc:abc', collection: NODE, rkey: 'x' })

  it('refuses loopback addresses unless the network is declared local', async () => {
    const strict = createProofFetch({ allowPrivateNetwork: false, timeoutMs: 1000, maxBytes: 4 * 1024 * 1024 })
    const err = await proveSubject(strict, req(base), keys).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TransientError)
    expect((err as TransientError).reason).toBe('unreachable')
  })

  it('caps the response size and follows no redirects', async () => {
    const local = createProofFetch({ allowPrivateNetwork: true, timeoutMs: 1000, maxBytes: 1024 * 1024 })
    const big = await proveSubject(local, req(base), keys).catch((e: unknown) => e)
    expect((big as TransientError).reason).toBe('unreachable')
    expect((big as TransientError).message).toMatch(/size|large|length/i)
    const redirected = await proveSubject(local, req(redirecting), keys).catch((e: unknown) => e)
    expect(redirected).toBeInstanceOf(TransientError)
    expect(landings).toBe(0)
  })
})
