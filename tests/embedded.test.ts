import { mkdtemp, rm, stat } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { startEmbeddedPostgres } from '../src/db/embedded.ts'
import { freePort } from './support/postgres.ts'

const isRoot = process.getuid?.() === 0

describe('embedded Postgres under a private directory', () => {
  // Only root has the trouble: Postgres then runs as the `postgres` user, kept out of root's 700 folders.
  it.skipIf(!isRoot)('says what is wrong and how to fix it, not a bare "Permission denied"', async () => {
    const parent = await mkdtemp(path.join(os.tmpdir(), 'collab-private-'))
    try {
      expect((await stat(parent)).mode & 0o777).toBe(0o700)
      const failure = await startEmbeddedPostgres({ dir: path.join(parent, 'data', 'pg'), port: await freePort(), ephemeral: true }).then(
        async (db) => {
          await db.stop()
          return null
        },
        (err: unknown) => err as Error,
      )
      expect(failure).not.toBeNull()
      const message = failure?.message ?? ''
      expect(message).toContain(`${parent} (mode 700)`)
      expect(message).toContain('"postgres"')
      expect(message).toContain(`chmod o+x ${parent}`)
      expect(message).toMatch(/DATA_DIR/)
      expect(message).toMatch(/DATABASE_URL/)
    } finally {
      await rm(parent, { recursive: true, force: true })
    }
  }, 60_000)
})
