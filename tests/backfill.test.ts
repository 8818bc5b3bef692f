import { spawn } from 'node:child_process'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { inject } from 'vitest'
import { normaliseRelayUrl } from '../src/config.ts'
import { closeFinishedRuns, createDidRun } from '../src/db/backfill.ts'
import { decodeFrame, type CommitEvent } from '../src/sources/firehose-frame.ts'
import { createUser, pdsUrl, startHarness, testConfig, waitFor, type Harness, type Ref, type User } from './support/harness.ts'
import { startFaultProxy, startPlcFront } from './support/fault-proxy.ts'
import { captureFrames, markSeq, startReplayRelay, touches } from './support/replay-relay.ts'
import { views } from './support/views.ts'
import { encode } from './support/cbor.ts'

const ws = () => normaliseRelayUrl(pdsUrl())
const pathOf = (uri: string) => uri.split('/').slice(3).join('/')

interface Health {
  cursor: number | null
  ingest: { resyncsRequested: number }
  backfill: {
    runs: { id: number; kind: string; reason: string; status: string; repos: { total: number; done: number; failed: number } }[]
    resync: { pending: number; desynchronized: number }
  }
}

/** Runs `npm run backfill` as an operator would, against a harness's database. */
const runCli = (h: Harness, args: string[]) =>
  new Promise<{ code: number | null; output: string }>((resolve) => {
    const child = spawn(process.execPath, ['src/cli.ts', 'backfill', ...args], {
      env: {
        ...process.env,
        DATABASE_URL: h.config.databaseUrl,
        DATABASE_SCHEMA: h.config.databaseSchema,
        RELAY_URL: h.config.relayUrl,
        BACKFILL_URL: h.config.backfill.url,
        PLC_URL: h.config.plcUrl,
        ALLOW_PRIVATE_NETWORK: 'true',
        LOG_LEVEL: process.env.CLI_LOG_LEVEL ?? 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (d: Buffer) => (output += d.toString()))
    child.stderr.on('data', (d: Buffer) => (output += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })

describe('backfill', () => {
  let h: Harness
  let v: ReturnType<typeof views>
  let alice: User
  let bob: User
  let early: { node: Ref; invite: Ref; acceptance: Ref; pending: Ref }

  beforeAll(async () => {
    ;[alice, bob] = await Promise.all([createUser('alice'), createUser('bob')])
    const node = await alice.node()
    const invite = await alice.invite(node, bob)
    const acceptance = await bob.accept(invite, node)
    const pending = await alice.invite(await alice.node(), bob)
    early = { node, invite, acceptance, pending }
    // The service starts reading after all of that: only a backfill can find it.
    h = await startHarness({ startCursor: await markSeq(ws(), alice) })
    v = views(h)
  })
  afterAll(async () => {
    await h?.stop()
  })

  it('finds records written before the service ever started (npm run backfill, full)', async () => {
    await v.barrier(alice, bob)
    expect(await v.find(bob, early.invite.uri)).toBeUndefined()
    const run = await runCli(h, [])
    expect(run.code, run.output).toBe(0)
    expect(run.output).toMatch(/done in .* repos synced, 0 failed/)
    const accepted = await v.waitForState(bob, early.invite.uri, 'accepted')
    expect(accepted.acceptanceUri).toBe(early.acceptance.uri)
    await v.waitForState(bob, early.pending.uri, 'pending')
    expect((await v.collaborators(early.node.uri)).map((c) => c.did)).toEqual([bob.did])
    const health = await h.get<Health>('_health')
    expect(health.body.backfill.runs[0]).toMatchObject({ kind: 'full', status: 'done' })
  })

  it('removes a record deleted while the service was down and its events were lost', async () => {
    const node = await alice.node()
    const invite = await alice.invite(node, bob)
    await v.waitForState(bob, invite.uri, 'pending')
    await h.service.stop()
    await alice.delete(invite.uri)
    // The deletion falls in a gap: the stored cursor jumps past it, as after a relay outage.
    const after = await markSeq(ws(), alice)
    const db = new pg.Client({ connectionString: h.config.databaseUrl, options: `-c search_path=${h.config.databaseSchema}` })
    await db.connect()
    await db.query('UPDATE relay_cursor SET seq = $1', [after])
    await db.end()
    const restarted = await startHarness({ databaseSchema: h.config.databaseSchema })
    try {
      const rv = views(restarted)
      // Neither party writes again: a new commit of theirs would reveal the gap to the chain
      // checks, which would resync the repo before the operator gets to it.
      const [c, d] = await Promise.all([createUser('gapc'), createUser('gapd')])
      await rv.barrier(c, d)
      expect((await rv.find(bob, invite.uri))?.state).toBe('pending')
      const run = await runCli(restarted, ['--did', alice.did])
      expect(run.code, run.output).toBe(0)
      await rv.waitForState(bob, invite.uri, 'rejected')
    } finally {
      await restarted.stop()
    }
    h = await startHarness({ databaseSchema: h.config.databaseSchema })
    v = views(h)
  })
})

/** What readers can see of a set of repos' records: the comparison a replay must match. */
const visibleState = async (h: Harness, dids: string[]) => {
  // A deleted invite keeps whichever version it had when its tombstone landed: a snapshot taken
  // after the delete never saw the last update. Readers see only that it is gone (rejected).
  const invites = await h.service.pool.query(
    `SELECT uri, deleted_at IS NOT NULL AS deleted,
            CASE WHEN deleted_at IS NULL THEN cid END AS cid, invitee,
            CASE WHEN deleted_at IS NULL THEN role END AS role,
            CASE WHEN deleted_at IS NULL THEN message END AS message, verification
     FROM invite WHERE inviter = ANY($1) ORDER BY uri`,
    [dids],
  )
  const acceptances = await h.service.pool.query(
    'SELECT uri, cid, invite_uri FROM acceptance WHERE author = ANY($1) ORDER BY uri',
    [dids],
  )
  return { invites: invites.rows, acceptances: acceptances.rows }
}

describe('backfill racing the live stream', () => {
  it('ends where a plain replay ends, whatever the interleaving', async () => {
    const [a, b] = await Promise.all([createUser('racea'), createUser('raceb')])
    const h = await startHarness()
    try {
      const node = await a.node()
      const written: Ref[] = []
      const runs: number[] = []
      let writesDone = new Date(8.64e15)
      const writer = (async () => {
        for (let i = 0; i < 12; i++) {
          const invite = await a.invite(node, b, { message: `m${i}` })
          written.push(invite)
          if (i % 3 === 1) await b.accept(invite, node)
          if (i % 4 === 2) await a.put(invite.uri, { subject: node, invitee: b.did, role: 'editor', createdAt: new Date().toISOString() })
          if (i % 5 === 3) await a.delete((written[i - 1] as Ref).uri)
        }
        writesDone = new Date()
      })()
      // Snapshots of both repos keep landing while the writes stream in.
      while (written.length < 12) {
        runs.push(await createDidRun(h.service.pool, [a.did, b.did], 'test: racing the stream'))
        h.service.backfiller.wake()
        await new Promise((r) => setTimeout(r, 40))
      }
      await writer
      await views(h).barrier(a, b)
      await waitFor(async () => {
        const res = await h.service.pool.query(`SELECT count(*)::int AS n FROM repo_sync WHERE status = 'pending'`)
        return res.rows[0]?.n === 0
      }, 'the backfills to finish')
      await views(h).barrier(a, b)
      // Several snapshot runs completed, and some of them while the writes were still coming.
      const done = await h.service.pool.query<{ finished_at: Date }>(
        `SELECT finished_at FROM backfill_run WHERE id = ANY($1) AND status = 'done'`,
        [runs],
      )
      expect(done.rows.length).toBeGreaterThan(2)
      expect(done.rows.some((r) => r.finished_at < writesDone)).toBe(true)
      const synced = await h.service.pool.query(`SELECT count(*)::int AS n FROM repo_sync WHERE records IS NOT NULL`)
      expect(synced.rows[0]?.n).toBeGreaterThan(0)

      // The oracle: a fresh index that only replays the stream.
      const oracle = await startHarness()
      try {
        await views(oracle).barrier(a, b)
        expect(await visibleState(h, [a.did, b.did])).toEqual(await visibleState(oracle, [a.did, b.did]))
      } finally {
        await oracle.stop()
      }
    } finally {
      await h.stop()
    }
  }, 60_000)
})

describe('sync 1.1 chain checks', () => {
  it('detects a skipped event of a tracked repo and repairs it by resync', async () => {
    const [a, b] = await Promise.all([createUser('chaina'), createUser('chainb')])
    const from = await markSeq(ws(), a)
    const node = await a.node()
    const first = await a.invite(node, b)
    const skipped = await a.invite(node, b, { message: 'this event is lost' })
    const third = await a.invite(node, b)
    const frames = await captureFrames(ws(), from, touches(pathOf(third.uri)))
    const lost = frames.findIndex(touches(pathOf(skipped.uri)))
    expect(lost).toBeGreaterThan(0)
    const relay = await startReplayRelay(frames.filter((_, i) => i !== lost))
    const h = await startHarness({ relayUrl: relay.url, startCursor: from })
    try {
      const v = views(h)
      await v.waitForState(b, third.uri, 'pending')
      await v.waitForState(b, first.uri, 'pending')
      // The repo's next commit did not continue the chain: a resync fetched the repo and found it.
      await v.waitForState(b, skipped.uri, 'pending')
      const health = await h.get<Health>('_health')
      expect(health.body.ingest.resyncsRequested).toBeGreaterThanOrEqual(1)
      const state = await h.service.pool.query('SELECT status FROM repo_state WHERE did = $1', [a.did])
      expect(state.rows[0]?.status).toBe('synced')
      const skippedEvt = decodeFrame(frames[lost] as Uint8Array) as CommitEvent
      const sync = await h.service.pool.query('SELECT reason FROM repo_sync WHERE did = $1', [a.did])
      expect(sync.rows[0]?.reason).toContain(skippedEvt.rev)
    } finally {
      await h.stop()
      await relay.close()
    }
  })
})

describe('backfill resilience', () => {
  it('resumes after a restart without redoing finished repos, and one failing PDS stops no one', async () => {
    const users = await Promise.all(Array.from({ length: 8 }, (_, i) => createUser(`bf${i}`)))
    const invitee = await createUser('bfee')
    for (const u of users) await u.invite(await u.node(), invitee)
    const victim = users[0] as User
    const proxy = await startFaultProxy(pdsUrl())
    proxy.mode = 'down'
    const front = await startPlcFront(inject('plcUrl'), pdsUrl(), proxy.url, [victim.did])
    const slow = { ...testConfig('x').backfill, concurrency: 1, perHost: 1, ratePerHost: 4, maxAttempts: 3, backoffBaseMs: 100 }
    const start = await markSeq(ws(), invitee)
    let h = await startHarness({ startCursor: start, plcUrl: front.url, backfill: slow })
    try {
      const runId = await createDidRun(h.service.pool, [...users, invitee].map((u) => u.did), 'test: resumable')
      h.service.backfiller.wake()
      const doneBefore = await waitFor(async () => {
        const res = await h.service.pool.query<{ did: string; finished_at: Date }>(
          `SELECT did, finished_at FROM repo_sync WHERE run_id = $1 AND status = 'done'`,
          [runId],
        )
        return res.rows.length >= 3 ? res.rows : undefined
      }, 'some repos to finish')
      await h.stop()
      h = await startHarness({ databaseSchema: h.config.databaseSchema, plcUrl: front.url, backfill: { ...slow, ratePerHost: 100 } })
      const final = await waitFor(async () => {
        const res = await h.get<Health>('_health')
        const run = res.body.backfill.runs.find((r) => r.id === runId)
        return run?.status === 'done' ? run : undefined
      }, 'the run to finish', 20_000)
      expect(final.repos).toMatchObject({ total: 9, done: 8, failed: 1 })
      const after = await h.service.pool.query<{ did: string; finished_at: Date; status: string; last_error: string }>(
        'SELECT did, finished_at, status, last_error FROM repo_sync WHERE run_id = $1',
        [runId],
      )
      for (const row of doneBefore) {
        expect(after.rows.find((r) => r.did === row.did)?.finished_at).toEqual(row.finished_at)
      }
      const failed = after.rows.find((r) => r.did === victim.did)
      expect(failed).toMatchObject({ status: 'failed' })
      expect(failed?.last_error).toMatch(/unreachable/)
      for (const u of users.slice(1)) {
        const mine = await views(h).list(u, { inviter: u.did })
        expect(mine.invites).toHaveLength(1)
      }
    } finally {
      await h.stop()
      await front.close()
      await proxy.close()
    }
  }, 60_000)
})

describe('backfill runs', () => {
  it('are never closed before their repos are queued, however the closer interleaves', async () => {
    const h = await startHarness()
    try {
      let creating = true
      const closed: number[] = []
      // The backfiller's own closer, run as tightly as it can go beside the creation of runs.
      const closer = (async () => {
        while (creating) closed.push(...(await closeFinishedRuns(h.service.pool)))
      })()
      const ids: number[] = []
      for (let i = 0; i < 40; i++) ids.push(await createDidRun(h.service.pool, [`did:plc:race${i}aaaaaaaaaaaaaaaaa`], 'test: race'))
      creating = false
      await closer
      expect(closed.filter((id) => ids.includes(id))).toEqual([])
    } finally {
      await h.stop()
    }
  })
})

describe('gaps', () => {
  it('schedules a full backfill on first start and when the relay reports an outdated cursor', async () => {
    const relay = await startReplayRelay([
      new Uint8Array(
        Buffer.concat([
          Buffer.from(encode({ op: 1, t: '#info' })),
          Buffer.from(encode({ name: 'OutdatedCursor', message: 'cursor is older than the window' })),
        ]),
      ),
    ])
    const [a, b] = await Promise.all([createUser('gapa'), createUser('gapb')])
    await a.invite(await a.node(), b)
    const onGap = { ...testConfig('x').backfill, onGap: true }
    const h = await startHarness({ backfill: onGap })
    try {
      const first = await waitFor(async () => {
        const runs = (await h.get<Health>('_health')).body.backfill.runs
        return runs.find((r) => r.status === 'done')
      }, 'the first-start backfill', 20_000)
      expect(first.reason).toMatch(/first start/)
      expect(first.repos.done).toBeGreaterThan(0)
      await h.stop()
      const moved = await startHarness({ databaseSchema: h.config.databaseSchema, relayUrl: relay.url, backfill: onGap })
      try {
        const reasons = await waitFor(async () => {
          const runs = (await moved.get<Health>('_health')).body.backfill.runs
          const r = runs.map((x) => x.reason)
          return r.some((x) => /relay changed/.test(x)) ? r : undefined
        }, 'a backfill for the relay change')
        // The reason names the relay the stored cursor belonged to.
        expect(reasons.find((x) => /relay changed/.test(x))).toContain(h.config.relayUrl)
        await waitFor(async () => {
          const runs = (await moved.get<Health>('_health')).body.backfill.runs
          return runs.some((x) => /no longer holds events/.test(x.reason))
        }, 'a backfill for the outdated cursor', 20_000)
      } finally {
        await moved.stop()
      }
    } finally {
      await h.stop()
      await relay.close()
    }
  }, 60_000)
})
