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

/**
 * A port where connecting is refused, and stays refused: below 1024, so the OS never hands it to
 * another test's server the way it may reuse a port that `freePort` released a moment ago.
 */
export const refusedPort = async (skip: number[] = []): Promise<number> => {
  for (let port = 1; port < 1024; port++) {
    if (skip.includes(port)) continue
    const refused = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1')
      socket.once('connect', () => {
        socket.destroy()
        resolve(false)
      })
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'))
    })
    if (refused) return port
  }
  throw new Error('no port below 1024 refuses connections on 127.0.0.1')
}

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
