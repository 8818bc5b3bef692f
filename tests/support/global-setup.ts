import type { TestProject } from 'vitest/node'
import pg from 'pg'
import { startLocalNetwork } from './network.ts'
import { testPostgres } from './postgres.ts'

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string
    plcUrl: string
    pdsUrl: string
    adminPassword: string
    runId: string
  }
}

/** One database server and one local ATProto network for the whole run. */
export default async function setup(project: TestProject) {
  // In turn: the network points TMPDIR elsewhere while it starts.
  const db = await testPostgres()
  const network = await startLocalNetwork()
  const runId = `t${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`
  project.provide('databaseUrl', db.url)
  project.provide('plcUrl', network.plcUrl)
  project.provide('pdsUrl', network.pdsUrl)
  project.provide('adminPassword', network.adminPassword)
  project.provide('runId', runId)
  return async () => {
    // Each test file works in a schema of its own; drop this run's.
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    const res = await client.query<{ nspname: string }>('SELECT nspname FROM pg_namespace WHERE nspname LIKE $1', [`${runId}_%`])
    for (const row of res.rows) await client.query(`DROP SCHEMA "${row.nspname}" CASCADE`)
    await client.end()
    await network.close()
    await db.stop()
  }
}
