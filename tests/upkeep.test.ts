import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type pg from 'pg'
import { createLogger } from '../src/lib/log.ts'
import { migrate } from '../src/db/migrate.ts'
import { createPool, type Pool } from '../src/db/pool.ts'
import { recordExpiries } from '../src/db/retention.ts'
import { Upkeep } from '../src/workers/upkeep.ts'
import { freshSchema, testConfig, waitFor } from './support/harness.ts'

const log = createLogger('silent')
let pool: Pool
let schema: string

beforeAll(async () => {
  schema = freshSchema()
  const url = testConfig(schema).databaseUrl as string
  await migrate(url, schema, log)
  pool = createPool(url, schema)
})

afterAll(async () => {
  await pool?.end()
})

const expiredInvite = (uri: string) =>
  pool.query(
    `INSERT INTO invite (uri, inviter, cid, rev, subject_uri, subject_cid, subject_collection, invitee, created_at, expires_at, sort_at)
     VALUES ($1, 'did:plc:inviter', 'bafy', '3k', 'at://did:plc:inviter/pub.chive.graph.node/1', 'bafy', 'pub.chive.graph.node',
             'did:plc:invitee', now() - interval '2 days', now() - interval '1 day', now() - interval '2 days')`,
    [uri],
  )

/** The backend of one of the pool's transactions, for watching what it waits on. */
const backendPid = async (client: pg.PoolClient) => (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid as number

describe('upkeep', () => {
  it('runs the purge when the expiry timer is recording at the same moment, after it, instead of skipping it', async () => {
    const uri = 'at://did:plc:inviter/pub.chive.collaboration.invite/collide'
    await expiredInvite(uri)
    await pool.query(`INSERT INTO rejection (uri, reason, rejected_at) VALUES ('at://x/y/old', 'test', now() - interval '400 days')`)

    // The expiry job is held inside its transaction (its insert waits on a table lock of ours),
    // so whatever it holds, it holds while the hourly upkeep starts.
    const gate = await pool.connect()
    await gate.query('BEGIN')
    const gatePid = await backendPid(gate)
    await gate.query('LOCK TABLE audit_event IN EXCLUSIVE MODE')
    const expiring = recordExpiries(pool)
    const expiryPid = await waitFor(async () => {
      const r = await pool.query<{ pid: number }>(
        `SELECT l.pid FROM pg_locks l WHERE NOT l.granted AND l.relation = 'audit_event'::regclass AND $1 = ANY(pg_blocking_pids(l.pid))`,
        [gatePid],
      )
      return r.rows[0]?.pid
    }, 'the expiry job to be held')

    const upkeep = new Upkeep({ pool, days: 30, intervalMs: 3_600_000, log })
    const running = upkeep.run()
    let settled = false
    running.finally(() => (settled = true)).catch(() => {})
    // Either the upkeep is done at once (it skipped), or it waits for the expiry job to finish.
    const outcome = await waitFor(async () => {
      if (settled) return 'done without waiting'
      const r = await pool.query(`SELECT 1 FROM pg_locks l WHERE NOT l.granted AND $1 = ANY(pg_blocking_pids(l.pid))`, [expiryPid])
      return (r.rowCount ?? 0) > 0 && 'waited'
    }, 'the upkeep to wait for the expiry job or finish')
    await gate.query('COMMIT')
    gate.release()
    const [recorded, result] = await Promise.all([expiring, running])

    expect(outcome).toBe('waited')
    expect(recorded).toBe(1)
    expect(result.rejections).toBe(1)
    expect((await pool.query(`SELECT 1 FROM rejection WHERE uri = 'at://x/y/old'`)).rowCount).toBe(0)
    // Waiting does not record the expiry a second time.
    expect(result.expired).toBe(0)
    expect((await pool.query(`SELECT 1 FROM audit_event WHERE subject = $1 AND event = 'expiry'`, [uri])).rowCount).toBe(1)
  })

})
