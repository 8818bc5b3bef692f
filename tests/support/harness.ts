import { inject } from 'vitest'
import pg from 'pg'
import { AtpAgent } from '@atproto/api'
import { Lexicons } from '@atproto/lexicon'
import type { Config } from '../../src/config.ts'
import { httpBase, normaliseRelayUrl } from '../../src/config.ts'
import { createLogger } from '../../src/lib/log.ts'
import { loadLexicons } from '../../src/atproto/lexicons.ts'
import { startService, type Service } from '../../src/service.ts'

export const SERVICE_DID = 'did:web:indexer.test'
export const INVITE = 'pub.chive.collaboration.invite'
export const ACCEPTANCE = 'pub.chive.collaboration.inviteAcceptance'
export const NODE = 'pub.chive.graph.node'
export const LIST_INVITES = 'pub.chive.collaboration.listInvites'
export const LIST_COLLABORATORS = 'pub.chive.collaboration.listCollaborators'

export const lexicons: Lexicons = loadLexicons()

let counter = 0
const unique = (prefix: string): string =>
  `${prefix}${Date.now().toString(36).slice(-4)}${(counter++).toString(36)}${Math.floor(Math.random() * 36 ** 3).toString(36)}`

export interface Ref {
  uri: string
  cid: string
}

/** An account on the local PDS, writing records through its real XRPC API. */
export class User {
  readonly agent: AtpAgent
  readonly did: string
  readonly handle: string
  constructor(agent: AtpAgent, did: string, handle: string) {
    this.agent = agent
    this.did = did
    this.handle = handle
  }

  async create(collection: string, record: Record<string, unknown>, rkey?: string): Promise<Ref> {
    const res = await this.agent.com.atproto.repo.createRecord({
      repo: this.did,
      collection,
      rkey,
      record: { $type: collection, ...record },
      validate: false,
    })
    return { uri: res.data.uri, cid: res.data.cid }
  }

  async put(uri: string, record: Record<string, unknown>): Promise<Ref> {
    const [, , , collection, rkey] = uri.split('/')
    const res = await this.agent.com.atproto.repo.putRecord({
      repo: this.did,
      collection: collection as string,
      rkey: rkey as string,
      record: { $type: collection, ...record },
      validate: false,
    })
    return { uri: res.data.uri, cid: res.data.cid }
  }

  async delete(uri: string): Promise<void> {
    const [, , , collection, rkey] = uri.split('/')
    await this.agent.com.atproto.repo.deleteRecord({ repo: this.did, collection: collection as string, rkey: rkey as string })
  }

  /** A service-auth token minted by the user's PDS, as the Chive frontend obtains one. */
  async token(lxm: string, aud = SERVICE_DID): Promise<string> {
    const res = await this.agent.com.atproto.server.getServiceAuth({ aud, lxm })
    return res.data.token
  }

  /** A Chive record of this user's, to be the subject of invites. */
  node(title = 'a collection'): Promise<Ref> {
    return this.create(NODE, { title, createdAt: new Date().toISOString() })
  }

  invite(subject: Ref, invitee: User | string, extra: Record<string, unknown> = {}): Promise<Ref> {
    return this.create(INVITE, {
      subject,
      invitee: typeof invitee === 'string' ? invitee : invitee.did,
      role: 'collaborator',
      createdAt: new Date().toISOString(),
      ...extra,
    })
  }

  accept(invite: Ref, subject: Ref, extra: Record<string, unknown> = {}): Promise<Ref> {
    return this.create(ACCEPTANCE, { invite, subject, createdAt: new Date().toISOString(), ...extra })
  }
}

export const pdsUrl = (): string => inject('pdsUrl')

export const createUser = async (name = 'u'): Promise<User> => {
  const handle = `${unique(name).slice(0, 16)}.test`
  const agent = new AtpAgent({ service: pdsUrl() })
  const res = await agent.createAccount({ handle, email: `${handle}@example.com`, password: 'password' })
  return new User(agent, res.data.did, handle)
}

/** The local PDS's admin API, for takedowns and account deletion. */
export const adminAgent = (): AtpAgent => {
  const agent = new AtpAgent({ service: pdsUrl() })
  agent.api.setHeader('authorization', `Basic ${Buffer.from(`admin:${inject('adminPassword')}`).toString('base64')}`)
  return agent
}

export interface ApiResponse<T = Record<string, unknown>> {
  status: number
  body: T
}

export interface Harness {
  service: Service
  config: Config
  get<T = Record<string, unknown>>(nsid: string, params?: Record<string, string | number | string[]>, token?: string): Promise<ApiResponse<T>>
  /** Stops the service as SIGTERM would, and starts it again on the same database. */
  restart(): Promise<void>
  stop(): Promise<void>
}

/** Moves a stopped harness's stored cursor back to `seq`, so its restart replays from there. */
export const rewindCursor = async (h: Harness, seq = 0): Promise<void> => {
  const admin = new pg.Client({ connectionString: h.config.databaseUrl, options: `-c search_path=${h.config.databaseSchema}` })
  await admin.connect()
  try {
    await admin.query('UPDATE relay_cursor SET seq = $1', [seq])
  } finally {
    await admin.end()
  }
}

export const testConfig = (schema: string, overrides: Partial<Config> = {}): Config => ({
  databaseUrl: inject('databaseUrl'),
  databaseSchema: schema,
  dataDir: './data',
  embeddedPgPort: 0,
  relayUrl: normaliseRelayUrl(pdsUrl()),
  startCursor: 0,
  jetstream: undefined,
  plcUrl: inject('plcUrl'),
  port: 0,
  host: '127.0.0.1',
  serviceDid: SERVICE_DID,
  logLevel: process.env.TEST_LOG_LEVEL ?? 'silent',
  allowPrivateNetwork: true,
  leaderRetryMs: 200,
  leaderCheckMs: 1000,
  relayIdleTimeoutMs: 120_000,
  relayMaxBackoffMs: 500,
  ingest: { concurrency: 8, maxParkMs: 120_000, maxQueuedBytes: 32 * 1024 * 1024 },
  identityTimeoutMs: 5000,
  verify: { concurrency: 8, perHost: 4, maxAttempts: 30, backoffBaseMs: 50, backoffMaxMs: 3_600_000, leaseMs: 60_000, pollMs: 1000, timeoutMs: 2000, maxBytes: 1024 * 1024 },
  // Tests replay the PDS from seq 0; backfill tests turn gap backfills on themselves.
  backfill: {
    url: httpBase(pdsUrl()),
    onGap: false,
    concurrency: 4,
    perHost: 2,
    ratePerHost: 100,
    maxAttempts: 5,
    backoffBaseMs: 50,
    backoffMaxMs: 2000,
    leaseMs: 300_000,
    pollMs: 1000,
    discoveryBackoffMs: 1000,
    discoveryMaxBackoffMs: 300_000,
    timeoutMs: 60_000,
    maxBytes: 64 * 1024 * 1024,
  },
  admin: {
    password: undefined,
    moderatorDids: [],
    maxAuthFailures: 1000,
    authFailureWindowMs: 60_000,
    spamPerHour: 30,
    spamPerDay: 200,
  },
  retention: { days: 30, intervalMs: 3_600_000, expiryIntervalMs: 3_600_000 },
  // Property tests send hundreds of requests from one address; rate-limit tests set their own.
  api: { rateLimitMax: 0, rateLimitWindowMs: 60_000, requestTimeoutMs: 15_000, maxHeaderBytes: 16 * 1024, statementTimeoutMs: 5000, poolMax: 8, trustProxy: false },
  push: { pollMs: 1000, maxBufferedBytes: 1024 * 1024, slowTimeoutMs: 10_000, heartbeatMs: 30_000, maxConnections: 20_000, maxPerDid: 10, maxPerAddress: 100, maxTokenTtlSeconds: 3600, replayPoolMax: 2 },
  webhooks: { urls: [], secret: undefined, timeoutMs: 5000, backoffBaseMs: 1000, maxBackoffMs: 300_000 },
  version: 'test',
  ...overrides,
})

/** A fresh schema in the run's shared database, for one test file. */
export const freshSchema = (): string => `${inject('runId')}_${unique('s')}`.toLowerCase()

export const startHarness = async (overrides: Partial<Config> = {}): Promise<Harness> => {
  const config = testConfig(freshSchema(), overrides)
  const log = createLogger(config.logLevel)
  let service = await startService(config, log)
  const harness: Harness = {
    get service() {
      return service
    },
    config,
    async get(nsid, params = {}, token) {
      const url = new URL(`/xrpc/${nsid}`, service.url)
      for (const [k, v] of Object.entries(params)) {
        for (const item of Array.isArray(v) ? v : [v]) url.searchParams.append(k, String(item))
      }
      const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} })
      const text = await res.text()
      let body: unknown
      try {
        body = JSON.parse(text)
      } catch {
        body = { raw: text }
      }
      return { status: res.status, body: body as never }
    },
    async restart() {
      await service.stop()
      service = await startService({ ...config, port: 0 }, log)
    },
    stop: () => service.stop(),
  }
  return harness
}

/** Polls until `check` returns a value (not undefined/false) or the time runs out. */
export const waitFor = async <T>(check: () => Promise<T | undefined | false>, what: string, timeoutMs = 10_000): Promise<T> => {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await check()
      if (v !== undefined && v !== false) return v
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

/** Asserts a listInvites / listCollaborators response is valid against the served lexicon. */
export const assertValidOutput = (nsid: string, body: unknown): void => {
  lexicons.assertValidXrpcOutput(nsid, body)
}
