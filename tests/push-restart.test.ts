import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, describe, expect, it } from 'vitest'
import pg from 'pg'
import { IDEMPOTENCY_HEADER } from '../src/push/webhook.ts'
import { SUBSCRIBE_INVITES } from '../src/push/subscription.ts'
import { SERVICE_DID, createUser, freshSchema, pdsUrl, testConfig, waitFor, type Ref } from './support/harness.ts'
import { PushClient, type Change } from './support/push-client.ts'
import { spawnService } from './support/service-process.ts'

/**
 * The service as `npm start` runs it, SIGKILLed while a subscriber listens, a webhook receiver
 * is being delivered to, and writes keep coming: a subscriber that resumes from the last seq it
 * received, on the restarted service, has every change of its invites, each once; the receiver
 * has every change at least once, under the same idempotency key each time.
 */
describe('push across a SIGKILL', () => {
  const children: ReturnType<typeof spawnService>[] = []
  afterAll(() => {
    for (const c of children) c.child.kill('SIGKILL')
  })

  it('a subscriber resuming with its last seq sees every change, once; a webhook receiver, at least once', { timeout: 60_000 }, async () => {
    const received = new Map<string, string[]>()
    const receiver = createServer((req, res) => {
      let body = ''
      req.on('data', (d: Buffer) => (body += d.toString()))
      req.on('end', () => {
        const key = String(req.headers[IDEMPOTENCY_HEADER])
        received.set(key, [...(received.get(key) ?? []), body])
        res.writeHead(204).end()
      })
    })
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r))
    const schema = freshSchema()
    const databaseUrl = testConfig(schema).databaseUrl as string
    const env = {
      DATABASE_URL: databaseUrl,
      DATABASE_SCHEMA: schema,
      RELAY_URL: pdsUrl(),
      PLC_URL: testConfig(schema).plcUrl,
      SERVICE_DID,
      START_CURSOR: '0',
      BACKFILL_ON_GAP: 'false',
      LEADER_RETRY_MS: '200',
      RELAY_MAX_BACKOFF_MS: '500',
      VERIFY_BACKOFF_MS: '50',
      RATE_LIMIT_MAX: '0',
      // Everything the service logs, to check that no token is among it.
      LOG_LEVEL: 'debug',
      WEBHOOK_URLS: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`,
      WEBHOOK_SECRET: 'a webhook secret of some length',
      WEBHOOK_BACKOFF_MS: '50',
    }
    const [alice, bob] = await Promise.all([createUser('ka'), createUser('kb')])
    const first = spawnService(env)
    children.push(first)
    const tokens = [await bob.token(SUBSCRIBE_INVITES), await bob.token(SUBSCRIBE_INVITES)]
    const before = new PushClient(await first.address, { token: tokens[0], params: { cursor: 0 } })
    await before.opened
    const node = await alice.node()
    const firstInvite = await alice.invite(node, bob)
    await before.waitForChange((c) => c.invite.uri === firstInvite.uri, 'the first push')

    // Writes in flight when the service dies, and more while it is down.
    const racing: Ref[] = await Promise.all([alice.invite(node, bob), alice.invite(node, bob)])
    first.child.kill('SIGKILL')
    await first.exited
    await before.closed
    const whileDown = await alice.invite(node, bob)
    await bob.accept(firstInvite, node)

    const second = spawnService(env)
    children.push(second)
    const last = before.changes[before.changes.length - 1] as Change
    // From a browser, this time: the token rides in the subprotocols.
    const after = new PushClient(await second.address, { token: tokens[1], browser: true, params: { cursor: last.seq } })
    await after.opened
    const live = await alice.invite(node, bob)
    const has = (uri: string, kind: string) => () =>
      Promise.resolve([...before.changes, ...after.changes].some((c) => c.invite.uri === uri && c.kind === kind))
    for (const r of [...racing, whileDown, live]) await waitFor(has(r.uri, 'created'), `${r.uri} created`, 30_000)
    await waitFor(has(firstInvite.uri, 'accepted'), 'the acceptance made while down', 30_000)
    after.ws.terminate()

    // Exactly the feed's changes of bob's invites, each once, in order.
    const client = new pg.Client({ connectionString: databaseUrl, options: `-c search_path=${schema}` })
    await client.connect()
    try {
      const feed = await client.query<{ id: number }>(
        `SELECT c.id::int FROM invite_change c JOIN invite i ON i.uri = c.invite_uri WHERE i.invitee = $1 ORDER BY c.id`,
        [bob.did],
      )
      const pushed = [...before.changes, ...after.changes].map((c) => c.seq)
      expect(pushed).toEqual(feed.rows.map((r) => r.id))
      // The webhook outbox: once the endpoint has passed the feed's head, every change of bob's
      // invites was delivered, and a key delivered twice carried the same change.
      const head = (await client.query<{ id: number }>('SELECT max(id)::int AS id FROM invite_change')).rows[0]?.id ?? 0
      await waitFor(async () => {
        const row = await client.query<{ position: number }>('SELECT position FROM webhook_endpoint')
        return (row.rows[0]?.position ?? 0) >= head
      }, 'the webhook endpoint to reach the head', 20_000)
      const seqOf = (key: string) => Number(key.split(':')[1])
      const delivered = new Set([...received.keys()].map(seqOf))
      for (const { id } of feed.rows) expect(delivered.has(id), `change ${id} delivered`).toBe(true)
      for (const bodies of received.values()) {
        expect(new Set(bodies.map((b) => (JSON.parse(b) as { seq: number }).seq)).size).toBe(1)
      }
      for (const t of tokens) expect(first.output() + second.output()).not.toContain((t as string).split('.')[2])
    } finally {
      await client.end()
      second.child.kill('SIGTERM')
      await second.exited
      receiver.close()
    }
  })
})
