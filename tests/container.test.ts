import { execFile } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { cp, mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { parseDocument } from 'yaml'
import { freshSchema, testConfig, waitFor } from './support/harness.ts'
import { runService } from './support/service-process.ts'

const ROOT = path.resolve(import.meta.dirname, '..')
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8')

interface Instruction {
  op: string
  args: string
}

/** Dockerfile instructions per build stage, continuation lines joined, comments dropped. */
const dockerStages = (text: string): Instruction[][] => {
  const stages: Instruction[][] = []
  const logical = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
  for (const line of logical) {
    const [, op = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? []
    const instruction = { op: op.toUpperCase(), args }
    if (instruction.op === 'FROM') stages.push([])
    stages[stages.length - 1]?.push(instruction)
  }
  return stages
}

const stages = dockerStages(read('Dockerfile'))
const final = stages[stages.length - 1] ?? []
const find = (stage: Instruction[], op: string) => stage.filter((i) => i.op === op)

/** Variables the service reads: every `env('NAME')`-style lookup in src/config.ts and src/config/. */
const configSources = ['src/config.ts', ...readdirSync(path.join(ROOT, 'src/config')).map((f) => `src/config/${f}`)].map(read).join('\n')
const configVars = new Set([...configSources.matchAll(/Env\('([A-Z_]+)'|env\('([A-Z_]+)'/g)].map((m) => m[1] ?? m[2]))

describe('Dockerfile', () => {
  it('builds in stages on Node 24 and installs runtime dependencies only', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2)
    for (const stage of stages) expect(stage[0]?.args).toMatch(/^node:24[\w.-]*/)
    const installs = stages.flatMap((s) => find(s, 'RUN')).map((i) => i.args)
    expect(installs.some((a) => /\bnpm ci\b.*--omit=dev/.test(a))).toBe(true)
    // The runtime image takes node_modules from the install stage, not from the build context.
    expect(find(final, 'COPY').some((i) => /--from=\S+\s+\S*node_modules/.test(i.args))).toBe(true)
    expect(read('.dockerignore').split('\n')).toEqual(expect.arrayContaining(['node_modules', 'tests', 'data']))
  })

  it('runs as an unprivileged user with a health check and the start command', () => {
    const users = find(final, 'USER').map((i) => i.args)
    expect(users.length).toBeGreaterThan(0)
    expect(users[users.length - 1]).not.toMatch(/^(root|0)(:|$)/)
    const health = find(final, 'HEALTHCHECK')
    expect(health).toHaveLength(1)
    expect(health[0]?.args).toMatch(/CMD .*\/xrpc\/_health/)
    const cmd = find(final, 'CMD')
    expect(cmd).toHaveLength(1)
    const argv = JSON.parse(cmd[0]?.args ?? '[]') as string[]
    expect(argv[0]).toBe('node')
    expect(argv[argv.length - 1]).toBe('src/start.mjs')
    const pkg = JSON.parse(read('package.json')) as { scripts: { start: string } }
    // `npm start` execs node (so that signals sent to npm reach it); Docker runs node directly.
    expect(pkg.scripts.start).toBe(`exec ${argv.join(' ')}`)
    expect(find(final, 'EXPOSE').map((i) => i.args)).toContain('3000')
    for (const env of find(final, 'ENV')) {
      for (const [, name] of env.args.matchAll(/([A-Z_]+)=/g)) {
        if (name !== 'NODE_ENV') expect(configVars.has(name as string), name).toBe(true)
      }
    }
  })
})

describe('docker-compose.yml', () => {
  const doc = parseDocument(read('docker-compose.yml'), { strict: true, uniqueKeys: true })
  const compose = doc.toJS() as {
    services: Record<string, Record<string, unknown>>
    volumes?: Record<string, unknown>
  }

  it('parses without errors or warnings', () => {
    expect(doc.errors).toEqual([])
    expect(doc.warnings).toEqual([])
  })

  it('runs Postgres with a health check, a named volume and a restart policy', () => {
    const pg = compose.services.postgres as {
      image: string
      environment: Record<string, string>
      volumes: string[]
      healthcheck: { test: string[]; interval: string; retries: number }
      restart: string
    }
    expect(pg.image).toMatch(/^postgres:\d+/)
    expect(pg.healthcheck.test.join(' ')).toMatch(/pg_isready/)
    expect(pg.healthcheck.retries).toBeGreaterThan(0)
    expect(['always', 'unless-stopped', 'on-failure']).toContain(pg.restart)
    const [volume, mount] = (pg.volumes[0] ?? '').split(':')
    expect(mount).toBe('/var/lib/postgresql/data')
    expect(Object.keys(compose.volumes ?? {})).toContain(volume)
  })

  it('starts the indexer once Postgres is healthy, restarts it, and passes it a configuration it reads', () => {
    const pg = compose.services.postgres as { environment: Record<string, string> }
    const indexer = compose.services.indexer as {
      build: string
      depends_on: Record<string, { condition: string }>
      environment: Record<string, string>
      ports: string[]
      restart: string
      stop_grace_period: string
    }
    expect(indexer.build).toBe('.')
    expect(indexer.depends_on.postgres?.condition).toBe('service_healthy')
    expect(['always', 'unless-stopped', 'on-failure']).toContain(indexer.restart)
    // Longer than the service's own 15 s shutdown deadline, so SIGTERM gets to commit the cursor.
    expect(Number.parseInt(indexer.stop_grace_period, 10)).toBeGreaterThan(15)
    for (const name of Object.keys(indexer.environment)) expect(configVars.has(name), name).toBe(true)
    const url = new URL(indexer.environment.DATABASE_URL as string)
    expect(url.hostname).toBe('postgres')
    expect(decodeURIComponent(url.username)).toBe(pg.environment.POSTGRES_USER)
    expect(decodeURIComponent(url.password)).toBe(pg.environment.POSTGRES_PASSWORD)
    expect(url.pathname.slice(1)).toBe(pg.environment.POSTGRES_DB)
    expect(indexer.ports.some((p) => p.endsWith(`:${indexer.environment.PORT}`))).toBe(true)
  })

  it("passes the operator's moderator and webhook settings through, with none committed", () => {
    const indexer = compose.services.indexer as { environment: Record<string, string> }
    // Without one of the first two nobody can enter the dashboard.
    for (const name of ['ADMIN_PASSWORD', 'MODERATOR_DIDS', 'WEBHOOK_URLS', 'WEBHOOK_SECRET']) {
      expect(indexer.environment[name], name).toBe(`\${${name}:-}`)
    }
    expect(read('.gitignore').split('\n')).toContain('.env')
  })
})

const exec = promisify(execFile)

describe('the production install', () => {
  it('starts from what the Dockerfile copies, with runtime dependencies only, and serves health', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'collab-prod-'))
    try {
      // Every file the Dockerfile copies from the build context, into one directory as in /app.
      const copied = stages
        .flatMap((s) => find(s, 'COPY'))
        .filter((i) => !i.args.startsWith('--from'))
        .flatMap((i) => i.args.split(/\s+/).slice(0, -1))
      expect(copied).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', 'src', 'lexicons']))
      for (const item of new Set(copied)) await cp(path.join(ROOT, item), path.join(dir, item), { recursive: true })
      // The npm cache of this machine serves the packages; the registry is asked only for what it lacks.
      await exec('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline'], {
        cwd: dir,
        env: { ...process.env, NODE_ENV: 'production' },
        maxBuffer: 16 * 1024 * 1024,
        timeout: 240_000,
      })
      expect(existsSync(path.join(dir, 'node_modules', 'fastify'))).toBe(true)
      for (const dev of ['vitest', 'typescript', '@atproto/dev-env']) expect(existsSync(path.join(dir, 'node_modules', dev)), dev).toBe(false)

      const config = testConfig(freshSchema())
      const run = await runService(
        {
          NODE_ENV: 'production',
          DATABASE_URL: config.databaseUrl,
          DATABASE_SCHEMA: config.databaseSchema,
          RELAY_URL: config.relayUrl,
          PLC_URL: config.plcUrl,
          BACKFILL_ON_GAP: 'false',
        },
        async (address) => {
          const health = await waitFor(async () => {
            const res = await fetch(`${address}/xrpc/_health`)
            return res.status === 200 ? ((await res.json()) as { version: string }) : undefined
          }, 'health from the production install', 30_000)
          expect(health.version).toBe(JSON.parse(read('package.json')).version)
          expect((await fetch(`${address}/metrics`)).status).toBe(200)
        },
        dir,
      )
      expect(run.code, run.output).toBe(0)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, 300_000)
})

describe('npm on an older Node than the project needs', () => {
  const pkg = JSON.parse(read('package.json')) as { scripts: { preinstall: string } }
  const preinstall = (userAgent: string, omit = '') =>
    exec('sh', ['-c', pkg.scripts.preinstall], { cwd: ROOT, env: { ...process.env, npm_config_user_agent: userAgent, npm_config_omit: omit } })

  it('says in one sentence why the engine warnings are harmless, instead of some 270 lines of them', async () => {
    // npm cannot hide one warning code alone: its warnings are hidden, and the sentence says so.
    expect(read('.npmrc')).toMatch(/^loglevel=error$/m)
    const old = await preinstall('npm/11.19.1 node/v20.20.2 linux x64 workspaces/false')
    expect(old.stderr.trim().split('\n')).toHaveLength(1)
    expect(old.stderr).toMatch(/Node 20\.20\.2 .*Node 24 of the node devDependency.*EBADENGINE.*harmless/)
    // Without the devDependencies nothing brings Node 24: the sentence says to install it.
    expect((await preinstall('npm/11.19.1 node/v20.20.2 linux x64 workspaces/false', 'dev')).stderr).toMatch(/install Node 24/)
    expect((await preinstall('npm/11.6.2 node/v24.21.0 linux x64 workspaces/false')).stderr).toBe('')
  })
})
