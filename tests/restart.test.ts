import { existsSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import pg from 'pg'
import { createUser, freshSchema, startHarness, testConfig, waitFor, type Harness, type User, rewindCursor } from './support/harness.ts'
import { views } from './support/views.ts'
import { embeddedServiceEnv, runService } from './support/service-process.ts'

let h: Harness
let v: ReturnType<typeof views>
let alice: User
let bob: User

beforeAll(async () => {
  h = await startHarness()
  v = views(h)
  ;[alice, bob] = await Promise.all([createUser('alice'), createUser('bob')])
})
afterAll(async () => {
  await h?.stop()
})

/** Everything a reader can see, without bookkeeping columns that a replay may touch. */
const snapshot = async () => {
  const q = async (sql: string) => (await h.service.pool.query(sql)).rows
  return {
    invites: await q(`SELECT uri, cid, rev, invitee, role, message, created_at, expires_at, sort_at, deleted_at IS NOT NULL AS deleted
                      FROM invite ORDER BY uri`),
    acceptances: await q('SELECT uri, cid, rev, invite_uri, invite_cid, lenient FROM acceptance ORDER BY uri'),
    versions: await q('SELECT uri, cid FROM invite_version ORDER BY uri, cid'),
    rejections: await q('SELECT uri, reason, rev FROM rejection ORDER BY uri, reason'),
    tombstones: await q('SELECT uri, rev, deleted FROM record_rev ORDER BY uri'),
  }
}

describe('restarts', () => {
  it('indexes writes made while the service was down, once, and a full replay changes nothing', async () => {
    const node = await alice.node()
    const kept = await alice.invite(node, bob)
    const doomed = await alice.invite(node, bob, { message: 'to be deleted' })
    await v.waitForState(bob, doomed.uri, 'pending')
    await v.waitForState(bob, kept.uri, 'pending')

    await h.service.stop()
    const newInvite = await alice.invite(node, bob)
    await alice.delete(doomed.uri)
    await bob.accept(kept, node)
    await alice.invite(node, alice) // rejected: an invite to oneself
    await h.restart()

    await v.waitForState(bob, kept.uri, 'accepted')
    await v.waitForState(bob, newInvite.uri, 'pending')
    await v.waitForState(bob, doomed.uri, 'rejected')
    const mine = (await v.list(alice, { inviter: alice.did, limit: 100 })).invites
    expect(mine.map((i) => i.uri).sort()).toEqual([kept.uri, doomed.uri, newInvite.uri].sort())

    // Wait for the cursor to settle, then replay the PDS's whole history from seq 0.
    const settle = () => v.barrier(alice, bob)
    await settle()
    const before = await snapshot()
    await h.service.stop()
    await rewindCursor(h)
    await h.restart()
    await waitFor(async () => {
      const health = await h.get<{ cursor: number | null; ingest: { lastSeq: number } }>('_health')
      return (health.body.cursor ?? 0) > 0
    }, 'the replay to commit')
    await settle()
    const after = await snapshot()
    expect(after.invites.length).toBe(before.invites.length + 1)
    // The only difference a replay may make is the one new marker invite.
    const newUris = new Set(after.invites.map((i) => i.uri))
    for (const u of before.invites) expect(newUris.has(u.uri)).toBe(true)
    expect(after.invites.filter((i) => before.invites.some((b) => b.uri === i.uri))).toEqual(before.invites)
    expect(after.acceptances).toEqual(before.acceptances)
    expect(after.rejections).toEqual(before.rejections)
  })
})

const waitForCursor = (address: string) =>
  waitFor(async () => {
    const res = await fetch(`${address}/xrpc/_health`)
    const body = (await res.json()) as { version: string; cursor: number | null }
    return res.status === 200 && body.cursor !== null ? body : undefined
  }, 'a committed cursor')

describe('the operator contract of `npm start`', () => {
  it('serves health, and on SIGTERM commits its cursor and exits 0', async () => {
    const config = testConfig(freshSchema())
    const run = await runService(
      {
        DATABASE_URL: config.databaseUrl,
        DATABASE_SCHEMA: config.databaseSchema,
        RELAY_URL: config.relayUrl.replace(/^ws/, 'http'),
        PLC_URL: config.plcUrl,
        START_CURSOR: '0',
      },
      async (address) => {
        const health = await waitForCursor(address)
        expect(health.version).toMatch(/^\d+\.\d+\.\d+/)
      },
    )
    expect(run.code, run.output).toBe(0)
    expect(run.stopMs).toBeLessThan(5000)
    expect(run.output).toMatch(/shutting down/)
    const client = new pg.Client({ connectionString: config.databaseUrl })
    await client.connect()
    const res = await client.query(`SELECT seq FROM "${config.databaseSchema}".relay_cursor`)
    await client.end()
    expect(res.rows).toHaveLength(1)
    expect(res.rows[0].seq).toBeGreaterThan(0)
  })

  it('runs on an embedded Postgres kept under DATA_DIR when DATABASE_URL is unset', async () => {
    const { dataDir, port, env, remove } = await embeddedServiceEnv('collab-start-')
    try {
      const first = await runService(env, async (address) => {
        await waitForCursor(address)
      })
      expect(first.code, first.output).toBe(0)
      expect(existsSync(path.join(dataDir, 'pg', 'PG_VERSION'))).toBe(true)
      // The server is stopped with the service, and the data survives into the next start.
      await expect(new pg.Client({ connectionString: `postgres://postgres:postgres@127.0.0.1:${port}/postgres` }).connect()).rejects.toThrow()
      const second = await runService(env, async (address) => {
        const health = await waitForCursor(address)
        expect(health.cursor).toBeGreaterThan(0)
      })
      expect(second.code, second.output).toBe(0)
      expect(second.output).not.toMatch(/migrations applied/)
    } finally {
      await remove()
    }
  }, 60_000)
})
