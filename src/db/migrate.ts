import { fileURLToPath } from 'node:url'
import { runner } from 'node-pg-migrate'
import type { Logger } from '../log.ts'

const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations', import.meta.url))

/** Applies pending migrations; node-pg-migrate holds an advisory lock so replicas can start together. */
export const migrate = async (databaseUrl: string, schema: string, log: Logger): Promise<void> => {
  const applied = await runner({
    databaseUrl,
    dir: MIGRATIONS_DIR,
    direction: 'up',
    schema,
    createSchema: true,
    migrationsTable: 'pgmigrations',
    log: (msg: string) => log.debug(msg),
  })
  if (applied.length > 0) log.info({ migrations: applied.map((m) => m.name) }, 'migrations applied')
}
