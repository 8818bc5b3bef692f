import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { migrationLockKey } from '../src/db/migrate.ts'
import { freshSchema, testConfig, waitFor } from './support/harness.ts'
import { spawnService } from './support/service-process.ts'

/** Advisory-lock waiters on a bigint key: what `pg_locks` shows for `pg_advisory_lock(key)` not granted yet. */
const waiters = async (db: pg.Client, key: number): Promise<number> => {
  const res = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_locks
     WHERE locktype = 'advisory' AND NOT granted AND objsubid = 1
       AND ((classid::bigint << 32) | objid::bigint) = $1::bigint`,
    [key],
  )
  return res.rows[0]?.n ?? 0
}

describe('replicas starting together', () => {
  it('two `npm start` processes started at once on a fresh schema both become healthy', async () => {
    const config = testConfig(freshSchema())
    const env = {
      DATABASE_URL: config.databaseUrl,
      DATABASE_SCHEMA: config.databaseSchema,
      RELAY_URL: config.relayUrl.replace(/^ws/, 'http'),
      PLC_URL: config.plcUrl,
      START_CURSOR: '0',
      LEADER_RETRY_MS: '200',
    }
    const db = new pg.Client({ connectionString: config.databaseUrl })
    await db.connect()
    const key = migrationLockKey(config.databaseSchema)
    // Hold the schema's migration lock, as a replica in the middle of migrating does, while both start.
    await db.query('SELECT pg_advisory_lock($1::bigint)', [key])
    const services = [spawnService(env), spawnService(env)]
    try {
      await waitFor(async () => (await waiters(db, key)) === 2, 'both processes to wait for the migration lock', 30_000)
      await db.query('SELECT pg_advisory_unlock($1::bigint)', [key])
      const healthy = await Promise.all(
        services.map(async (s) => {
          const address = await s.address
          return waitFor(async () => {
            const res = await fetch(`${address}/xrpc/_health`)
            return res.status === 200 ? ((await res.json()) as { leader?: boolean }) : undefined
          }, 'the service to be healthy', 30_000)
        }),
      )
      expect(healthy).toHaveLength(2)
      for (const s of services) expect(s.child.exitCode, s.output()).toBeNull()
      // Migrations ran once.
      const applied = await db.query(`SELECT count(*)::int AS n FROM "${config.databaseSchema}".pgmigrations`)
      const names = await db.query(`SELECT name FROM "${config.databaseSchema}".pgmigrations`)
      expect(new Set(names.rows.map((r: { name: string }) => r.name)).size).toBe(applied.rows[0].n)
      const output = services.map((s) => s.output()).join('\n')
      expect(output).not.toMatch(/Another migration is already running/)
      expect(output.match(/migrations applied/g)?.length).toBe(1)
      for (const s of services) s.child.kill('SIGTERM')
      const codes = await Promise.all(services.map((s) => s.exited))
      expect(codes).toEqual([0, 0])
    } finally {
      for (const s of services) s.child.kill('SIGKILL')
      await db.end()
    }
  }, 90_000)
})
