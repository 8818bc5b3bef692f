import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { normaliseRelayUrl } from '../src/config.ts'
import { createUser, pdsUrl, startHarness, testConfig, waitFor, type Harness, type Ref, type User } from './support/harness.ts'
import { startReplayRelay } from './support/replay-relay.ts'
import { views } from './support/views.ts'
import { encode } from './support/cbor.ts'

/**
 * Deletes made while the service is down, whose events it never reads: only a full backfill can
 * apply them, and only if it syncs the repos the index holds records of, not just the repos that
 * discovery finds (a repo whose last invite or acceptance is gone no longer holds our collections).
 */

interface Run {
  reason: string
  status: string
  repos: { total: number; done: number; failed: number }
}

const onGap = () => ({ ...testConfig('x').backfill, onGap: true })

const sql = async (h: Harness, text: string, params: unknown[] = []) => {
  const db = new pg.Client({ connectionString: h.config.databaseUrl, options: `-c search_path=${h.config.databaseSchema}` })
  await db.connect()
  try {
    return (await db.query(text, params)).rows
  } finally {
    await db.end()
  }
}

const runs = async (h: Harness): Promise<Run[]> => (await h.get<{ backfill: { runs: Run[] } }>('_health')).body.backfill.runs

/** Two collaborations: `b1` accepted `a1`'s invite (b1's only acceptance); `a2` invited `b2` (a2's only invite). */
interface World {
  a1: User
  b1: User
  a2: User
  b2: User
  node1: Ref
  acceptance: Ref
  invite2: Ref
}

const writeWorld = async (): Promise<World> => {
  const [a1, b1, a2, b2] = await Promise.all([createUser('dta'), createUser('dtb'), createUser('dtc'), createUser('dtd')])
  const node1 = await a1.node()
  const invite1 = await a1.invite(node1, b1)
  const acceptance = await b1.accept(invite1, node1)
  const invite2 = await a2.invite(await a2.node(), b2)
  return { a1, b1, a2, b2, node1, acceptance, invite2 }
}

const indexed = async (h: Harness, w: World) => {
  const v = views(h)
  await waitFor(async () => (await v.collaborators(w.node1.uri)).some((c) => c.did === w.b1.did), 'the collaboration', 20_000)
  await v.waitForState(w.b2, w.invite2.uri, 'pending')
}

/** The deletes the stopped service never reads. */
const deleteWhileDown = async (w: World) => {
  await w.b1.delete(w.acceptance.uri)
  await w.a2.delete(w.invite2.uri)
}

const applied = async (h: Harness, w: World) => {
  const v = views(h)
  await waitFor(async () => (await v.collaborators(w.node1.uri)).length === 0, 'the deleted acceptance to be gone', 20_000)
  await v.waitForState(w.b2, w.invite2.uri, 'rejected')
  expect(await sql(h, 'SELECT uri FROM acceptance WHERE uri = $1', [w.acceptance.uri])).toEqual([])
  expect(await sql(h, 'SELECT deleted_at IS NOT NULL AS deleted FROM invite WHERE uri = $1', [w.invite2.uri])).toEqual([{ deleted: true }])
}

describe('deletes made during downtime', () => {
  it('a live tail records its position from the first event, relevant or not', async () => {
    const h = await startHarness({ startCursor: undefined })
    try {
      expect(await sql(h, 'SELECT seq FROM relay_cursor')).toEqual([])
      const someone = await createUser('dtmark')
      await someone.create('com.example.marker', { createdAt: new Date().toISOString() })
      const rows = await waitFor(async () => {
        const r = await sql(h, 'SELECT seq FROM relay_cursor')
        return r.length > 0 ? r : undefined
      }, 'a committed cursor')
      expect(Number(rows[0]?.seq)).toBeGreaterThan(0)
    } finally {
      await h.stop()
    }
  })

  it('are applied after a restart with no cursor stored (live tail)', async () => {
    const w = await writeWorld()
    // A live tail: everything above was written before it started, so only its backfill finds it.
    const h = await startHarness({ startCursor: undefined, backfill: onGap() })
    let restarted: Harness | undefined
    try {
      await indexed(h, w)
      // The records can be listed before the run's closer has marked it done.
      const first = await waitFor(async () => (await runs(h)).find((r) => r.status === 'done'), 'the first backfill to finish', 30_000)
      expect(first.reason).toMatch(/first start/)
      await h.stop()
      // As after a live tail stopped before its first event: no cursor is stored.
      await sql(h, 'DELETE FROM relay_cursor')
      await deleteWhileDown(w)
      restarted = await startHarness({ databaseSchema: h.config.databaseSchema, startCursor: undefined, backfill: onGap() })
      const gap = await waitFor(
        async () => (await runs(restarted as Harness)).find((r) => r.status === 'done' && !/first start/.test(r.reason)),
        'the gap backfill',
        30_000,
      )
      expect(gap.reason).toMatch(/no cursor stored but the index holds records/)
      expect(gap.repos.failed).toBe(0)
      await applied(restarted, w)
    } finally {
      await (restarted ?? h).stop()
    }
  }, 90_000)

  it('are applied after a restart on which the relay reports an outdated cursor', async () => {
    const relay = await startReplayRelay([
      new Uint8Array(
        Buffer.concat([
          Buffer.from(encode({ op: 1, t: '#info' })),
          Buffer.from(encode({ name: 'OutdatedCursor', message: 'cursor is older than the window' })),
        ]),
      ),
    ])
    const w = await writeWorld()
    const h = await startHarness({ backfill: onGap() })
    let restarted: Harness | undefined
    try {
      await indexed(h, w)
      await views(h).barrier(w.a1, w.b1)
      await h.stop()
      await deleteWhileDown(w)
      // The same relay, which no longer holds the events since our cursor.
      const url = normaliseRelayUrl(relay.url)
      await sql(h, 'UPDATE relay_cursor SET relay_url = $1 WHERE relay_url = $2', [url, normaliseRelayUrl(pdsUrl())])
      restarted = await startHarness({ databaseSchema: h.config.databaseSchema, relayUrl: url, backfill: onGap() })
      const gap = await waitFor(
        async () => (await runs(restarted as Harness)).find((r) => r.status === 'done' && /no longer holds events/.test(r.reason)),
        'the gap backfill',
        30_000,
      )
      expect(gap.repos.failed).toBe(0)
      await applied(restarted, w)
    } finally {
      await (restarted ?? h).stop()
      await relay.close()
    }
  }, 90_000)
})
