import { BlockMap, blocksToCarFile } from '@atproto/repo'
import { parseCid } from '@atproto/lex-data'
import { afterEach, describe, expect, inject, it } from 'vitest'
import { normaliseRelayUrl } from '../src/config.ts'
import { createUser, pdsUrl, startHarness, testConfig, waitFor, type Harness, type Ref, type User } from './support/harness.ts'
import { startFaultProxy, startPlcFront, startPlcSwitch } from './support/fault-proxy.ts'
import { markSeq } from './support/replay-relay.ts'
import { deletes, startTamperRelay, type TamperRelay } from './support/tamper-relay.ts'
import { revAt } from './support/tid.ts'
import { views } from './support/views.ts'
import { runBackfillCli } from './support/backfill-cli.ts'

/**
 * A repo's sync state (its signed position, whether it is owed a resync) has one owner that the
 * ingest leader, the backfill worker and `npm run backfill` all go through. Each case is a loss
 * found at the seams between them when the state lived in several places.
 */

const ws = () => normaliseRelayUrl(pdsUrl())
const pathOf = (ref: Ref): string => ref.uri.split('/').slice(3).join('/')
/** How long the service has to see a break and resync the repo. */
const DETECT_MS = 15_000

interface Health {
  ingest: { resyncsRequested?: number } | null
  backfill: { resync: { retrying: number; retries: { did: string; attempts: number; lastError: string | null; nextAttemptAt: string }[] } }
}

const cleanups: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const close of cleanups.splice(0).reverse()) await close()
})

const resyncsRequested = async (h: Harness): Promise<number> => (await h.get<Health>('_health')).body.ingest?.resyncsRequested ?? 0

/** The repo's resync finished after `since`. */
const resyncDone = (h: Harness, did: string, since: Date) =>
  waitFor(
    async () => {
      const res = await h.service.pool.query<{ status: string; finished_at: Date | null }>('SELECT status, finished_at FROM repo_sync WHERE did = $1', [did])
      const row = res.rows[0]
      return row?.status === 'done' && row.finished_at !== null && row.finished_at > since ? row : undefined
    },
    `a resync of ${did} to finish`,
    DETECT_MS,
  )

/** A relay in the middle that follows the PDS from now, and a service reading it. */
const tamperedService = async (overrides: Parameters<typeof startHarness>[0] = {}) => {
  const scribe = await createUser('scribe')
  const mark = await markSeq(ws(), scribe)
  const relay = await startTamperRelay(ws(), mark)
  cleanups.push(() => relay.close())
  const h = await startHarness({ relayUrl: relay.url, startCursor: mark, ...overrides })
  cleanups.push(() => h.stop())
  return { scribe, relay, h, v: views(h) }
}

const collaborated = async (h: Harness, inviter: User, invitee: User, title: string) => {
  const v = views(h)
  const subject = await inviter.node(title)
  const invite = await inviter.invite(subject, invitee)
  const acceptance = await invitee.accept(invite, subject)
  await waitFor(async () => (await v.collaborators(subject.uri)).some((c) => c.acceptanceUri === acceptance.uri), 'the collaborator to be listed')
  return { subject, invite, acceptance }
}

const withdrawn = (h: Harness, subject: Ref, invitee: User, what: string) =>
  waitFor(async () => !(await views(h).collaborators(subject.uri)).some((c) => c.did === invitee.did), what, DETECT_MS)

describe('repo sync state', () => {
  it('a resync that fails past BACKFILL_MAX_ATTEMPTS (the directory down) keeps retrying; an invite written meanwhile is listed after', async () => {
    const plc = await startPlcSwitch(inject('plcUrl'))
    cleanups.push(() => plc.close())
    const [scribe, invitee] = await Promise.all([createUser('scribe'), createUser('outagee')])
    const from = await markSeq(ws(), scribe)
    const base = testConfig('unused')
    const h = await startHarness({
      plcUrl: plc.url,
      startCursor: from,
      // Parked repos go to a resync quickly, and a resync uses its attempts in well under a second.
      ingest: { ...base.ingest, maxParkMs: 300 },
      backfill: { ...base.backfill, maxAttempts: 2, backoffBaseMs: 50, backoffMaxMs: 300 },
    })
    cleanups.push(() => h.stop())
    plc.mode = 'unavailable'
    // A new account: the service has never resolved it, and cannot while the directory is away.
    const inviter = await createUser('outager')
    const subject = await inviter.node('written during the outage')
    const invite = await inviter.invite(subject, invitee)
    // Past its attempts (maxAttempts is 2) while the directory is still away.
    const failing = await waitFor(
      async () => {
        const res = await h.service.pool.query<{ attempts: number; status: string }>('SELECT attempts, status FROM repo_sync WHERE did = $1', [inviter.did])
        const row = res.rows[0]
        return row && row.attempts >= 2 ? row : undefined
      },
      'the resync of the new account to fail its attempts',
      DETECT_MS,
    )
    const health = (await h.get<Health>('_health')).body.backfill.resync
    plc.mode = 'pass'
    // The cursor went past the invite long ago: only the resync, still retrying, can bring it.
    await views(h).waitForState(invitee, invite.uri, 'pending')
    expect(failing.status).toBe('pending')
    expect(health.retrying).toBeGreaterThanOrEqual(1)
    const shown = health.retries.find((r) => r.did === inviter.did)
    expect(shown?.attempts).toBeGreaterThanOrEqual(2)
    expect(shown?.lastError).toBeTruthy()
    expect(Date.parse(shown?.nextAttemptAt ?? '')).not.toBeNaN()
  }, 60_000)

  it('an unsigned commit with no ops at a future rev leaves no trace: the repo’s real commits after it are applied', async () => {
    const { scribe, relay, h } = await tamperedService()
    const [inviter, invitee] = await Promise.all([createUser('inviter'), createUser('invitee')])
    const c = await collaborated(h, inviter, invitee, 'forged rev')
    const held = (await h.service.pool.query<{ rev: string; data_cid: string }>('SELECT rev, data_cid FROM repo_state WHERE did = $1', [invitee.did])).rows[0]
    if (!held) throw new Error('the invitee is not tracked')
    // The invitee's commit as a relay could forge it: no ops, the root held as both prevData and
    // data (inverting nothing lands on it), a rev four minutes ahead, a signature of zeros. It
    // takes the place of one of the scribe's commits, at its seq.
    const forgedRev = revAt(4 * 60_000)
    const data = parseCid(held.data_cid)
    const forged = relay.tamper(scribe.did, () => true, {
      kind: 'replace',
      body: async (commit) => {
        const blocks = new BlockMap()
        const root = await blocks.add({ did: invitee.did, version: 3, data, rev: forgedRev, prev: null, sig: new Uint8Array(64) } as never)
        return { seq: commit.seq, rebase: false, tooBig: false, repo: invitee.did, commit: root, rev: forgedRev, since: held.rev, prevData: data, blocks: await blocksToCarFile(root, blocks), ops: [], blobs: [], time: new Date().toISOString() }
      },
    })
    const before = new Date()
    await scribe.create('app.bsky.feed.like', { subject: c.subject, createdAt: new Date().toISOString() })
    await forged
    // Its deferred signature check fails, and the repo is resynced from its PDS.
    await resyncDone(h, invitee.did, before)
    await invitee.delete(c.acceptance.uri)
    await withdrawn(h, c.subject, invitee, 'the acceptance deleted after the forgery to be withdrawn (its commit was taken for stale)')
    const stored = (await h.service.pool.query<{ rev: string }>('SELECT rev FROM repo_state WHERE did = $1', [invitee.did])).rows[0]
    expect((stored?.rev ?? '') < forgedRev, `the forged rev ${forgedRev} was stored`).toBe(true)
  }, 60_000)

  it('a resync finished by `npm run backfill` turns the chain checks back on: a stripped op after it is caught', async () => {
    const [inviter, invitee] = await Promise.all([createUser('inviter'), createUser('invitee')])
    // The service reaches the invitee's PDS only through a proxy that the test takes down.
    const proxy = await startFaultProxy(pdsUrl())
    cleanups.push(() => proxy.close())
    const front = await startPlcFront(inject('plcUrl'), pdsUrl(), proxy.url, [invitee.did])
    cleanups.push(() => front.close())
    const { relay, h } = await tamperedService({ plcUrl: front.url })
    const first = await collaborated(h, inviter, invitee, 'first')
    const second = await collaborated(h, inviter, invitee, 'second')

    proxy.mode = 'down'
    const stripped = relay.tamper(invitee.did, deletes(pathOf(first.acceptance)), { kind: 'strip-op', path: pathOf(first.acceptance) })
    await invitee.delete(first.acceptance.uri)
    await stripped
    await waitFor(async () => {
      const res = await h.service.pool.query<{ status: string }>('SELECT status FROM repo_state WHERE did = $1', [invitee.did])
      return res.rows[0]?.status === 'desynchronized'
    }, 'the invitee to be desynchronized')
    // The service cannot finish the resync; the operator's CLI does.
    await h.service.backfiller.stop()
    const cli = await runBackfillCli(h, ['--did', invitee.did], inject('plcUrl'))
    expect(cli.code, cli.output).toBe(0)
    h.service.backfiller.start()
    await withdrawn(h, first.subject, invitee, 'the first withdrawal to be listed after the CLI resync')
    const after = await h.service.pool.query<{ status: string }>('SELECT status FROM repo_state WHERE did = $1', [invitee.did])
    expect(after.rows[0]?.status).toBe('synced')

    const resyncsBefore = await resyncsRequested(h)
    const again = relay.tamper(invitee.did, deletes(pathOf(second.acceptance)), { kind: 'strip-op', path: pathOf(second.acceptance) })
    await invitee.delete(second.acceptance.uri)
    await again
    await waitFor(async () => (await resyncsRequested(h)) > resyncsBefore, 'the stripped op after the CLI resync to be caught (a resync requested)', DETECT_MS)
    proxy.mode = 'up'
    await withdrawn(h, second.subject, invitee, 'the second withdrawal to be listed')
  }, 90_000)

  it('a repo first seen holding only a subject is tracked from that commit: a hidden delete of the subject is caught', async () => {
    const { relay, h } = await tamperedService()
    const [author, invitee] = await Promise.all([createUser('author'), createUser('invitee')])
    // The author holds no invite or acceptance yet: only a Chive record an invite may name.
    const subject = await author.node('a subject before any invite')
    await waitFor(async () => {
      const res = await h.service.pool.query('SELECT 1 FROM subject_record WHERE uri = $1 AND NOT deleted', [subject.uri])
      return res.rows.length > 0
    }, 'the subject to be seen on the stream')
    const stripped = relay.tamper(author.did, deletes(pathOf(subject)), { kind: 'strip-op', path: pathOf(subject) })
    const before = new Date()
    await author.delete(subject.uri)
    await stripped
    // The delete's commit, without its op, must not continue the tree held: a resync shows it.
    await resyncDone(h, author.did, before)
    // An invite to the deleted subject, at the version the stream saw, is then never listed.
    const invite = await author.invite(subject, invitee)
    const settled = await waitFor(async () => {
      const res = await h.service.pool.query<{ verification: string }>('SELECT verification FROM invite WHERE uri = $1', [invite.uri])
      const state = res.rows[0]?.verification
      return state !== undefined && state !== 'pending' ? state : undefined
    }, 'the invite to the deleted subject to be settled')
    expect(settled).not.toBe('verified')
    const inbox = await views(h).list(invitee, { invitee: invitee.did })
    expect(inbox.invites.map((i) => i.uri)).not.toContain(invite.uri)
  }, 60_000)
})
