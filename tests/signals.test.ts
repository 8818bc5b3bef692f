import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import pg from 'pg'
import { createUser, freshSchema, pdsUrl, testConfig, waitFor, type User } from './support/harness.ts'
import { markSeq } from './support/replay-relay.ts'
import { normaliseRelayUrl } from '../src/config.ts'
import { embeddedServiceEnv, processGroup, spawnNpmStart } from './support/service-process.ts'

// Systemd, supervisors and `kill <pid>` signal the process they started, which for `npm start`
// is npm, not node: these tests send SIGTERM to npm's PID alone, never to the group.

let alice: User
let bob: User

beforeAll(async () => {
  ;[alice, bob] = await Promise.all([createUser('sga'), createUser('sgb')])
})

interface Health {
  cursor: number | null
  ingest: { lastSeq: number | null; connected: boolean } | null
}

const health = async (address: string): Promise<Health> => (await (await fetch(`${address}/xrpc/_health`)).json()) as Health

const answers = async (address: string): Promise<boolean> => {
  try {
    await fetch(`${address}/xrpc/_health`, { signal: AbortSignal.timeout(1000) })
    return true
  } catch {
    return false
  }
}

/** SIGTERM to npm alone; resolves once the whole tree is gone, with npm's exit code. */
const terminateNpm = async (svc: ReturnType<typeof spawnNpmStart>) => {
  // The tree is npm and the service's node (and /bin/sh while it is there), Postgres' children.
  expect(processGroup(svc.pgid).length).toBeGreaterThanOrEqual(2)
  process.kill(svc.pgid, 'SIGTERM')
  const code = await svc.exited
  await waitFor(async () => processGroup(svc.pgid).length === 0, 'every process of `npm start` to exit', 15_000)
  return code
}

describe('SIGTERM to the npm process of `npm start`', () => {
  let cleanups: (() => void)[] = []
  afterAll(() => {
    for (const c of cleanups) c()
    cleanups = []
  })

  it('reaches the service: the cursor is committed, the API stops, the tree exits 0', async () => {
    const config = testConfig(freshSchema())
    const svc = spawnNpmStart({
      DATABASE_URL: config.databaseUrl,
      DATABASE_SCHEMA: config.databaseSchema,
      RELAY_URL: config.relayUrl,
      PLC_URL: config.plcUrl,
      // From just before now: a replay of the whole shared PDS (every other test file's repos,
      // some made unresolvable on purpose) could hold the low-water mark back for its own reasons.
      START_CURSOR: String((await markSeq(normaliseRelayUrl(pdsUrl()), alice)) - 1),
      BACKFILL_ON_GAP: 'false',
      ADMIN_PASSWORD: undefined,
      MODERATOR_DIDS: undefined,
    })
    cleanups.push(svc.killGroup)
    const address = await svc.address
    await waitFor(async () => ((await health(address)).cursor ?? 0) > 0, 'a committed cursor', 30_000)
    const before = (await health(address)).ingest?.lastSeq ?? 0
    // A fresh event, read but (at most a second after) not necessarily committed when npm is signalled.
    await alice.invite(await alice.node(), bob)
    const read = await waitFor(async () => {
      const h = await health(address)
      return h.ingest?.lastSeq != null && h.ingest.lastSeq > before ? h.ingest.lastSeq : undefined
    }, 'the new event to be read')
    const code = await terminateNpm(svc)
    expect(code, svc.output()).toBe(0)
    expect(svc.output()).toMatch(/"signal":"SIGTERM".*shutting down/)
    expect(await answers(address)).toBe(false)
    const client = new pg.Client({ connectionString: config.databaseUrl })
    await client.connect()
    const res = await client.query<{ seq: string }>(`SELECT seq FROM "${config.databaseSchema}".relay_cursor`)
    await client.end()
    expect(Number(res.rows[0]?.seq)).toBeGreaterThanOrEqual(read)
    // Nobody can moderate such a service: it says so at start (issue 12).
    expect(svc.output()).toMatch(/neither ADMIN_PASSWORD nor MODERATOR_DIDS is set/)
  }, 90_000)

  it('stops the embedded Postgres too', async () => {
    const { port, env, remove } = await embeddedServiceEnv('collab-signal-')
    const svc = spawnNpmStart({ ...env, BACKFILL_ON_GAP: 'false' })
    cleanups.push(svc.killGroup)
    try {
      const address = await svc.address
      await waitFor(async () => ((await health(address)).cursor ?? 0) > 0, 'a committed cursor', 30_000)
      const code = await terminateNpm(svc)
      expect(code, svc.output()).toBe(0)
      expect(await answers(address)).toBe(false)
      await expect(new pg.Client({ connectionString: `postgres://postgres:postgres@127.0.0.1:${port}/postgres` }).connect()).rejects.toThrow()
    } finally {
      svc.killGroup()
      await remove()
    }
  }, 120_000)
})
