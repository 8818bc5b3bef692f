import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { adminAgent, createUser, pdsUrl, startHarness, testConfig, waitFor, type Harness, type Ref, type User } from './support/harness.ts'
import { startJetstreamStandIn, type JetstreamCommitEvent, type JetstreamStandIn } from './support/jetstream.ts'
import { startFaultProxy, startPlcFront } from './support/fault-proxy.ts'
import { views } from './support/views.ts'
import { revAt } from './support/tid.ts'
import { ADMIN_PASSWORD, moderator } from './support/admin.ts'

/**
 * Jetstream mode against a Jetstream stand-in that translates the real local PDS's firehose into
 * Jetstream's JSON and can lie: every commit event counts only as the repo's host proves it
 * (getRecord CAR: signed commit + MST path), forged events are rejected and counted, a host that
 * cannot be reached parks its repo, and the cursor (time_us) survives instance switches,
 * restarts and retention running out.
 */

interface Health {
  source: { mode: string; urls: string[] }
  cursor: number | null
  ingest: {
    mode: string
    jetstreamVersion: string | null
    sourceUrl: string | null
    bytesReceived: number
    rejected: Record<string, number>
    malformed: Record<string, number>
    retries: Record<string, number>
    problems: Record<string, { count: number }>
    proofs: { inFlight: number; outcomes: Record<string, number> } | null
  } | null
  backfill: { runs: { kind: string; reason: string; status: string }[] }
}

const jetstreamConfig = (urls: string[], extra: Record<string, unknown> = {}) => ({
  // No reconciliation unless a test asks: what is proven must come from the stream alone.
  jetstream: { urls, rewindMs: 2000, retentionMs: 24 * 3_600_000, reconcileMs: 0 },
  // A live tail: Jetstream's cursor is a time, not the PDS's seq.
  startCursor: undefined,
  ...extra,
})

type JetstreamCommitRecord = NonNullable<JetstreamCommitEvent['commit']['record']>

const health = async (h: Harness): Promise<Health> => (await h.get<Health>('_health')).body
/** A live tail starts where the stream is when it connects: writes before that are not its to see. */
const connected = (h: Harness) => waitFor(async () => h.service.indexer.snapshotStatus().connected, 'the Jetstream subscription to open')
const outcome = async (h: Harness, name: string): Promise<number> => (await health(h)).ingest?.proofs?.outcomes[name] ?? 0
const rejected = async (h: Harness, reason: string): Promise<number> => (await health(h)).ingest?.rejected[reason] ?? 0
const headRev = async (user: User): Promise<string> => (await user.agent.com.atproto.sync.getLatestCommit({ did: user.did })).data.rev
const rkeyOf = (ref: Ref): string => ref.uri.split('/')[4] as string
const collectionOf = (ref: Ref): string => ref.uri.split('/')[3] as string

const collaboration = async (h: Harness) => {
  const v = views(h)
  const [inviter, invitee] = await Promise.all([createUser('jinviter'), createUser('jinvitee')])
  const subject = await inviter.node('a shared work')
  const invite = await inviter.invite(subject, invitee)
  const acceptance = await invitee.accept(invite, subject)
  await waitFor(async () => (await v.collaborators(subject.uri)).some((c) => c.acceptanceUri === acceptance.uri), 'the collaborator to be listed')
  await v.waitForState(invitee, invite.uri, 'accepted')
  return { inviter, invitee, subject, invite, acceptance }
}

describe('Jetstream mode (v2 instance)', () => {
  let js: JetstreamStandIn
  let h: Harness
  let v: ReturnType<typeof views>

  beforeAll(async () => {
    js = await startJetstreamStandIn({ pdsUrl: pdsUrl(), v2: true })
    h = await startHarness(jetstreamConfig([js.url], { admin: { ...testConfig('x').admin, password: ADMIN_PASSWORD } }))
    await connected(h)
    v = views(h)
  })
  afterAll(async () => {
    await h?.stop()
    await js?.close()
  })

  it('indexes invites, acceptances and subjects, each proven by its host, and applies a proven delete', async () => {
    const c = await collaboration(h)
    const body = await health(h)
    expect(body.source).toEqual({ mode: 'jetstream', urls: [js.url] })
    expect(body.ingest?.mode).toBe('jetstream')
    expect(body.ingest?.jetstreamVersion).toBe('v2')
    // Subject, invite and acceptance: each one proven, at the event's rev or (the host having
    // moved on by the time it was asked) at a later one.
    expect((await outcome(h, 'proven')) + (await outcome(h, 'superseded'))).toBeGreaterThanOrEqual(3)
    expect(body.ingest?.bytesReceived).toBeGreaterThan(0)
    const query = js.queries[0] as URLSearchParams
    expect(query.getAll('collections')).toEqual(['pub.chive.*'])
    // The withdrawal is applied on the host's proof of absence.
    await c.invitee.delete(c.acceptance.uri)
    await waitFor(async () => !(await v.collaborators(c.subject.uri)).some((x) => x.did === c.invitee.did), 'the withdrawn collaborator to leave')
    await v.waitForState(c.invitee, c.invite.uri, 'pending')
    const metrics = await (await fetch(new URL('/metrics', h.service.url))).text()
    expect(metrics).toMatch(/^chive_indexer_source_mode\{mode="jetstream"\} 1$/m)
    expect(metrics).toMatch(/^chive_indexer_jetstream_proof_outcomes_total\{outcome="proven"\} [1-9]\d*$/m)
    expect(metrics).toMatch(/^chive_indexer_source_bytes_received_total [1-9]\d*$/m)
    // The proofs' bytes are the mode's other traffic, counted apart from the stream's.
    expect(metrics).toMatch(/^chive_indexer_jetstream_proof_bytes_total [1-9]\d*$/m)
  })

  it('rejects an event whose record is not its CID\'s content, and lists the invite as the host holds it', async () => {
    const [inviter, invitee] = await Promise.all([createUser('jcontent'), createUser('jreader')])
    const subject = await inviter.node('forged upon')
    const before = await rejected(h, 'jetstream-forged')
    const forged = js.tamper(
      (e) => e.kind === 'commit' && e.did === inviter.did && e.commit.collection === 'pub.chive.collaboration.invite',
      (e) => (e.kind === 'commit' ? { ...e, commit: { ...e.commit, record: { ...e.commit.record, role: 'owner' } } } : e),
    )
    const invite = await inviter.invite(subject, invitee)
    await forged
    await waitFor(async () => (await rejected(h, 'jetstream-forged')) > before, 'the altered record to be rejected')
    const listed = await v.waitForState(invitee, invite.uri, 'pending')
    expect(listed.role).toBe('collaborator')
  })

  it('rejects a self-consistent forgery (record and CID rewritten together) on the host\'s proof', async () => {
    const [inviter, invitee] = await Promise.all([createUser('jforger'), createUser('jvictim')])
    const subject = await inviter.node('forged upon')
    const before = await rejected(h, 'jetstream-forged')
    const proofsBefore = await outcome(h, 'forged')
    // Another invite's record and CID: a valid pair, just not what this path holds.
    const decoy = await inviter.invite(subject, await createUser('jdecoy'))
    const decoyRecord = (await inviter.agent.com.atproto.repo.getRecord({ repo: inviter.did, collection: collectionOf(decoy), rkey: rkeyOf(decoy) })).data.value
    const forged = js.tamper(
      (e) => e.kind === 'commit' && e.did === inviter.did && e.commit.collection === 'pub.chive.collaboration.invite' && e.commit.rkey !== rkeyOf(decoy),
      (e) => (e.kind === 'commit' ? { ...e, commit: { ...e.commit, cid: decoy.cid, record: decoyRecord as JetstreamCommitRecord } } : e),
    )
    const invite = await inviter.invite(subject, invitee)
    await forged
    await waitFor(async () => (await rejected(h, 'jetstream-forged')) > before, 'the forged event to be rejected')
    expect(await outcome(h, 'forged')).toBeGreaterThan(proofsBefore)
    // The host's signed repo has the real invite: a resync brings it, with its real CID.
    const listed = await v.waitForState(invitee, invite.uri, 'pending')
    expect(listed.invitee).toBe(invitee.did)
    const rows = await h.service.pool.query<{ cid: string }>('SELECT cid FROM invite WHERE uri = $1', [invite.uri])
    expect(rows.rows[0]?.cid).toBe(invite.cid)
  })

  it('rejects invented creates and deletes; the records the host holds stay as they are', async () => {
    const c = await collaboration(h)
    const before = await rejected(h, 'jetstream-forged')
    // A delete of the acceptance at the repo's current rev: the signed tree there still holds it.
    const rev = await headRev(c.invitee)
    js.inject({ did: c.invitee.did, kind: 'commit', commit: { rev, operation: 'delete', collection: collectionOf(c.acceptance), rkey: rkeyOf(c.acceptance) } })
    // An invite the inviter never wrote, at a rev its host has never reached.
    const ghost = revAt(-1000)
    js.inject({
      did: c.inviter.did,
      kind: 'commit',
      commit: { rev: revAt(60_000), operation: 'create', collection: 'pub.chive.collaboration.invite', rkey: ghost, cid: c.invite.cid, record: { invitee: c.invitee.did } },
    })
    await waitFor(async () => (await rejected(h, 'jetstream-forged')) >= before + 2, 'both invented events to be rejected', 15_000)
    expect((await v.collaborators(c.subject.uri)).some((x) => x.acceptanceUri === c.acceptance.uri)).toBe(true)
    expect((await v.inbox(c.invitee)).invites.some((i) => i.uri.endsWith(`/${ghost}`))).toBe(false)
    // The stream went on: a later genuine write is indexed.
    const next = await c.inviter.invite(c.subject, await createUser('jlater'))
    await waitFor(async () => (await h.service.pool.query('SELECT 1 FROM invite WHERE uri = $1', [next.uri])).rowCount === 1, 'a later invite to be indexed')
  })

  it('follows the firehose path\'s flows: a takedown hides, a reinstatement shows, the inviter\'s delete rejects the invite', async () => {
    const c = await collaboration(h)
    const takedown = (applied: boolean) =>
      adminAgent().com.atproto.admin.updateSubjectStatus({
        subject: { $type: 'com.atproto.admin.defs#repoRef', did: c.inviter.did },
        takedown: { applied, ref: applied ? 'jetstream-takedown' : undefined },
      })
    await takedown(true)
    await waitFor(async () => (await v.find(c.invitee, c.invite.uri)) === undefined, 'the taken-down inviter\'s invite to be hidden')
    expect(await v.collaborators(c.subject.uri)).toEqual([])
    await takedown(false)
    await v.waitForState(c.invitee, c.invite.uri, 'accepted')
    await c.inviter.delete(c.invite.uri)
    // As on the firehose path: an invite its inviter deleted shows as rejected, and counts no more.
    await v.waitForState(c.invitee, c.invite.uri, 'rejected')
    expect(await v.collaborators(c.subject.uri)).toEqual([])
  })

  it('applies an account event as the host states it: a forged takedown hides nothing', async () => {
    const c = await collaboration(h)
    const before = await outcome(h, 'account-corrected')
    js.inject({ did: c.inviter.did, kind: 'account', account: { did: c.inviter.did, active: false, status: 'takendown', seq: 0, time: new Date().toISOString() } })
    await waitFor(async () => (await outcome(h, 'account-corrected')) > before, 'the account event to be checked with the host')
    expect((await v.inbox(c.invitee)).invites.some((i) => i.uri === c.invite.uri)).toBe(true)
  })

  it('shows the mode, the instance, the proofs and the bytes received to moderators', async () => {
    await collaboration(h)
    const status = await waitFor(async () => {
      const s = await moderator(h).ok<{ mode: string; sourceUrl?: string; jetstreamVersion?: string; bytesPerSecond?: number; proofs?: { inFlight: number; outcomes: Record<string, number> } }>('getFirehoseStatus', {})
      return (s.bytesPerSecond ?? 0) > 0 ? s : undefined
    }, 'a byte rate in the status', 15_000)
    expect(status.mode).toBe('jetstream')
    expect(status.jetstreamVersion).toBe('v2')
    expect(status.sourceUrl?.startsWith(`${js.url}/xrpc/network.bsky.jetstream.subscribeEvents`)).toBe(true)
    expect(status.proofs?.inFlight).toBe(0)
    expect(status.proofs?.outcomes.proven ?? 0).toBeGreaterThan(0)
    const signIn = await fetch(new URL('/admin/sign-in', h.service.url), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ name: 'moderator', password: ADMIN_PASSWORD }).toString(),
      redirect: 'manual',
    })
    const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] as string
    const page = await (await fetch(new URL('/admin/health', h.service.url), { headers: { cookie } })).text()
    expect(page).toContain('Jetstream v2, every record proven by its host')
    expect(page).toContain('Ingest health (Jetstream)')
    expect(page).toMatch(/Jetstream events by proof outcome<\/h4><dl><dt>[a-z]+<\/dt>/)
    expect(page).toMatch(/Received<b>[\d.]+ (B|KB|MB)\/s<\/b>/)
  })

  it('counts a malformed message and goes on', async () => {
    // The ingester's own status: _health shows it once a commit or the periodic status write stores it.
    const malformed = () => h.service.indexer.snapshotStatus().malformed['bad-json'] ?? 0
    const before = malformed()
    js.sendRaw('{"$type": "message", "payload": ', 'v2')
    await waitFor(async () => malformed() > before, 'the malformed message to be counted')
    // The connection was kept (a bad message is not a broken stream) and later events are indexed.
    expect(h.service.indexer.snapshotStatus().reconnects).toBe(0)
    await collaboration(h)
  })
})

describe('Jetstream mode: instances, hosts and cursors', () => {
  it('switches to the next instance when one fails, resuming from the same cursor (v1 where v2 is not offered)', async () => {
    const first = await startJetstreamStandIn({ pdsUrl: pdsUrl() })
    const second = await startJetstreamStandIn({ pdsUrl: pdsUrl(), v2: true })
    const h = await startHarness(jetstreamConfig([first.url, second.url]))
    try {
      await connected(h)
      const v = views(h)
      const c = await collaboration(h)
      expect((await health(h)).ingest?.jetstreamVersion).toBe('v1')
      expect(first.queries.some((q) => q.getAll('wantedCollections').includes('pub.chive.*'))).toBe(true)
      const cursor = (await health(h)).cursor as number
      expect(cursor).toBeGreaterThan(1e15)
      await first.close()
      const later = await c.inviter.invite(c.subject, await createUser('jswitch'))
      await waitFor(async () => (await h.service.pool.query('SELECT 1 FROM invite WHERE uri = $1', [later.uri])).rowCount === 1, 'the next instance to deliver')
      const resumed = second.queries.map((q) => Number(q.get('cursor'))).find((n) => n > 0)
      // Resumed at (or a few seconds before, the rewind) the cursor reached on the first instance.
      expect(resumed).toBeGreaterThanOrEqual(cursor - 2_000_000 - 1_000_000)
      expect(resumed).toBeLessThanOrEqual(cursor)
      await waitFor(async () => (await health(h)).ingest?.sourceUrl?.startsWith(second.url), 'the status to name the second instance')
      await c.invitee.delete(c.acceptance.uri)
      await v.waitForState(c.invitee, c.invite.uri, 'pending')
    } finally {
      await h.stop()
      await second.close()
      await first.close()
    }
  })

  it('parks a repo whose host cannot be reached and indexes its records once it answers', async () => {
    const [inviter, invitee] = await Promise.all([createUser('jparked'), createUser('jwaiting')])
    const proxy = await startFaultProxy(pdsUrl())
    const front = await startPlcFront(inject('plcUrl'), pdsUrl(), proxy.url, [inviter.did])
    const js = await startJetstreamStandIn({ pdsUrl: pdsUrl(), v2: true })
    const h = await startHarness(jetstreamConfig([js.url], { plcUrl: front.url, ingest: { ...testConfig('x').ingest, maxParkMs: 60_000 } }))
    try {
      await connected(h)
      const v = views(h)
      proxy.mode = 'unavailable'
      const subject = await inviter.node('behind a failing host')
      const invite = await inviter.invite(subject, invitee)
      await waitFor(async () => ((await health(h)).ingest?.retries['http-503'] ?? 0) > 0, 'the proof fetch to be retried')
      expect(await v.find(invitee, invite.uri)).toBeUndefined()
      // A host's trouble is not a verdict: nothing was rejected for it.
      expect((await health(h)).ingest?.rejected ?? {}).toEqual({})
      // Another repo's events go on meanwhile (collaboration() waits for them to be listed), while
      // the parked repo's invite is still not listed.
      await collaboration(h)
      expect(await v.find(invitee, invite.uri)).toBeUndefined()
      expect(h.service.indexer.snapshotStatus().parkedRepos).toBeGreaterThan(0)
      proxy.mode = 'up'
      await v.waitForState(invitee, invite.uri, 'pending')
    } finally {
      await h.stop()
      await js.close()
      await front.close()
      await proxy.close()
    }
  })

  it('finds what an instance withholds: a hidden withdrawal and a hidden invite are proven from the host', async () => {
    const js = await startJetstreamStandIn({ pdsUrl: pdsUrl(), v2: true })
    const h = await startHarness({ ...jetstreamConfig([js.url]), jetstream: { urls: [js.url], rewindMs: 2000, retentionMs: 24 * 3_600_000, reconcileMs: 3000 } })
    try {
      await connected(h)
      const v = views(h)
      const c = await collaboration(h)
      const hidden = (did: string, collection: string) =>
        js.tamper((e) => e.kind === 'commit' && e.did === did && e.commit.collection === collection, () => null)
      const withheldDelete = hidden(c.invitee.did, 'pub.chive.collaboration.inviteAcceptance')
      const withheldInvite = hidden(c.inviter.did, 'pub.chive.collaboration.invite')
      await c.invitee.delete(c.acceptance.uri)
      const late = await c.inviter.invite(c.subject, await createUser('jhidden'))
      await Promise.all([withheldDelete, withheldInvite])
      expect(js.stats.dropped).toBe(2)
      // Within a reconciliation period (3 s here), both are proven from the host and applied.
      await waitFor(async () => !(await v.collaborators(c.subject.uri)).some((x) => x.did === c.invitee.did), 'the withheld withdrawal to be found', 15_000)
      await waitFor(async () => (await h.service.pool.query('SELECT 1 FROM invite WHERE uri = $1', [late.uri])).rowCount === 1, 'the withheld invite to be found', 15_000)
      expect(await outcome(h, 'reconciled')).toBeGreaterThanOrEqual(2)
      expect(h.service.indexer.snapshotStatus().reconcile?.recordsRequeued).toBeGreaterThanOrEqual(2)
    } finally {
      await h.stop()
      await js.close()
    }
  })

  it('resumes after a restart from the committed cursor, rewound, and a cursor older than retention starts a full backfill', async () => {
    const js = await startJetstreamStandIn({ pdsUrl: pdsUrl(), v2: true })
    const h = await startHarness(jetstreamConfig([js.url], { backfill: { ...testConfig('x').backfill, onGap: true } }))
    try {
      await connected(h)
      const v = views(h)
      const c = await collaboration(h)
      await waitFor(async () => ((await health(h)).cursor ?? 0) > 1e15, 'a cursor to be committed')
      await h.service.stop()
      // Written while the service is down: the restart must replay it from Jetstream.
      await c.invitee.delete(c.acceptance.uri)
      const connections = js.queries.length
      await h.restart()
      await v.waitForState(c.invitee, c.invite.uri, 'pending')
      const stored = Number(js.queries[connections]?.get('cursor'))
      expect(stored).toBeGreaterThan(1e15)
      // Retention runs out while the service is down: v2 answers CursorTooOld.
      const runsBefore = (await health(h)).backfill?.runs.length ?? 0
      await h.service.stop()
      js.forget(Date.now() * 1000)
      await h.restart()
      const run = await waitFor(async () => {
        const b = await health(h)
        return b.backfill.runs.find((r) => r.kind === 'full' && /Jetstream cannot resume/.test(r.reason))
      }, 'a full backfill for the lost stretch', 15_000)
      expect(run).toBeDefined()
      expect((await health(h)).backfill.runs.length).toBeGreaterThan(runsBefore)
      expect((await health(h)).ingest?.problems.CursorTooOld?.count).toBeGreaterThan(0)
      // Live again: a new write is indexed.
      const again = await c.inviter.invite(c.subject, await createUser('jlive'))
      await waitFor(async () => (await h.service.pool.query('SELECT 1 FROM invite WHERE uri = $1', [again.uri])).rowCount === 1, 'a live write after CursorTooOld')
    } finally {
      await h.stop()
      await js.close()
    }
  })
})
