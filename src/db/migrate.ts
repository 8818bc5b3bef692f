import { createHash } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { runner } from 'node-pg-migrate'
import type { Logger } from '../lib/log.ts'

const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations', import.meta.url))

/**
 * The advisory lock key of one schema's migrations. node-pg-migrate's default key is one for the
 * whole server, so services in different schemas of one database would wait on each other; a key
 * per schema serialises only the processes that migrate the same tables. 48 bits of a hash: a
 * safe integer, and a collision only makes two schemas' migrations wait for each other.
 */
export const migrationLockKey = (schema: string): number =>
  Number.parseInt(createHash('sha256').update(`chive-collab-indexer:migrate:${schema}`).digest('hex').slice(0, 12), 16)

/**
 * Applies pending migrations. Replicas and the CLI may start at the same moment: each waits for
 * the schema's migration lock (instead of node-pg-migrate's default, which fails at once with
 * "Another migration is already running"), then finds the migrations applied and goes on.
 */
export const migrate = async (databaseUrl: string, schema: string, log: Logger): Promise<void> => {
  const applied = await runner({
    databaseUrl,
    dir: MIGRATIONS_DIR,
    direction: 'up',
    schema,
    createSchema: true,
    migrationsTable: 'pgmigrations',
    advisoryLockMode: 'wait',
    lockValue: migrationLockKey(schema),
    log: (msg: string) => log.debug(msg),
  })
  if (applied.length > 0) log.info({ migrations: applied.map((m) => m.name) }, 'migrations applied')
}
