import { chmod, mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { startEmbeddedPostgres } from '../../src/db/embedded.ts'

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo
      srv.close(() => resolve(port))
    })
  })

/** DATABASE_URL when set; otherwise a throwaway embedded Postgres for this run. */
export const testPostgres = async (): Promise<{ url: string; stop(): Promise<void> }> => {
  const fromEnv = process.env.DATABASE_URL
  if (fromEnv) return { url: fromEnv, stop: async () => {} }
  const parent = await mkdtemp(path.join(os.tmpdir(), 'collab-test-pg-'))
  // As root, Postgres runs as the `postgres` user, which must reach the data directory.
  await chmod(parent, 0o755)
  const db = await startEmbeddedPostgres({ dir: path.join(parent, 'data'), port: await freePort(), ephemeral: true })
  return {
    url: db.url,
    async stop() {
      await db.stop()
      await rm(parent, { recursive: true, force: true })
    },
  }
}
