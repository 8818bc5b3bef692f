import type { Socket } from 'node:net'
import { Writable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateProvenInvites } from '../src/db/bench-data.ts'
import { endpointLabel } from '../src/db/webhook.ts'
import { createLogger } from '../src/lib/log.ts'
import { startService } from '../src/service.ts'
import { createUser, freshSchema, startHarness, testConfig, waitFor, type Harness, type User } from './support/harness.ts'
import { PushClient } from './support/push-client.ts'
import { startReceiver } from './support/webhook-receiver.ts'

const SECRET = 'a webhook secret of some length'
// Where Slack- and Discord-style webhook URLs carry theirs: in the path, or the query.
const PATH_SECRET = 'XoXb7pathsecret9QzK'
const QUERY_SECRET = 'qU3rYs3cr3tT0k3n'

/** Where such an endpoint puts its secret. */
const SECRET_PATH = `/services/T01/B02/${PATH_SECRET}?token=${QUERY_SECRET}`

describe('webhooks', () => {
  let h: Harness
  let alice: User
  let bob: User
  let receiver: Awaited<ReturnType<typeof startReceiver>>
  beforeAll(async () => {
    receiver = await startReceiver(SECRET, 3, SECRET_PATH)
    h = await startHarness({ webhooks: { urls: [receiver.url], secret: SECRET, timeoutMs: 2000, backoffBaseMs: 20, maxBackoffMs: 100 } })
    ;[alice, bob] = await Promise.all([createUser('wa'), createUser('wb')])
  })
  afterAll(async () => {
    await h?.stop()
    await receiver?.close()
  })

  it('a webhook receiver that fails 3 times then succeeds gets every change, once per idempotency key, signed', async () => {
    const node = await alice.node()
    const invite = await alice.invite(node, bob)
    // The service replays the shared PDS's history: other tests' invites are in the feed too.
    const ok = () => receiver.deliveries.filter((d) => d.status === 200)
    const ours = () =>
      ok().map((d) => ({ key: d.key, ...(JSON.parse(d.body) as { kind: string; seq: number; invite: { uri: string } }) })).filter((d) => d.invite.uri === invite.uri)
    // Each write once the last is served: repos are indexed apart, and an acceptance indexed
    // before its invite changes nothing that was served (so nothing is pushed).
    const served = (n: number) => waitFor(async () => ours().length >= n, `${n} changes of the invite delivered`, 20_000)
    await served(1)
    const acceptance = await bob.accept(invite, node)
    await served(2)
    await bob.delete(acceptance.uri)
    await served(3)
    await alice.delete(invite.uri)
    await served(4)
    expect(receiver.deliveries.slice(0, 3).every((d) => d.status === 500)).toBe(true)
    // The failed change is retried with its key: the first success carries the first key.
    expect(receiver.deliveries[3]?.key).toBe(receiver.deliveries[0]?.key)
    expect(receiver.deliveries.every((d) => d.signed)).toBe(true)
    const keys = ok().map((d) => d.key)
    expect(new Set(keys).size).toBe(keys.length)
    expect(ours().map((d) => d.kind)).toEqual(['created', 'accepted', 'acceptanceWithdrawn', 'deleted'])
    expect(ours().map((d) => Number(d.key.split(':')[1]))).toEqual(ours().map((d) => d.seq))
    // In feed order, every key of the feed so far once.
    const seqs = ok().map((d) => Number(d.key.split(':')[1]))
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs)
    const health = await h.get<{ webhooks: { endpoint: string; failures: number; delivered: number; consecutiveFailures: number; lastError: string }[] }>('_health')
    expect(health.body.webhooks[0]).toMatchObject({ endpoint: endpointLabel(receiver.url), failures: 3, consecutiveFailures: 0, lastError: 'HTTP 500' })
    expect(health.body.webhooks[0]?.delivered).toBeGreaterThanOrEqual(4)
    const metrics = await (await fetch(`${h.service.url}/metrics`)).text()
    expect(metrics).toContain(`chive_indexer_webhook_failures_total{endpoint="${endpointLabel(receiver.url)}"} 3`)
  })

  it('shows an endpoint on the unauthenticated pages as its origin and a hash of its URL, never the secret in it', async () => {
    const label = endpointLabel(receiver.url)
    expect(label).toMatch(new RegExp(`^${new URL(receiver.url).origin}/…#[0-9a-f]{8}$`))
    expect(endpointLabel(receiver.url.replace(PATH_SECRET, 'another'))).not.toBe(label)
    const pages = [JSON.stringify((await h.get('_health')).body), await (await fetch(`${h.service.url}/metrics`)).text()]
    for (const page of pages) {
      expect(page).toContain(label)
      expect(page).not.toContain(PATH_SECRET)
      expect(page).not.toContain(QUERY_SECRET)
    }
  })


  it('forgets an endpoint whose URL is no longer configured, so it holds back no purge', async () => {
    const urls = async () => (await h.service.pool.query<{ url: string }>('SELECT url FROM webhook_endpoint')).rows.map((r) => r.url)
    expect(await urls()).toEqual([receiver.url])
    h.config.webhooks = { ...h.config.webhooks, urls: [] }
    await h.restart()
    await waitFor(async () => (await urls()).length === 0, 'the unconfigured endpoint to be forgotten')
  })
})

describe('webhook log lines', () => {
  it('name the endpoint by its display form: failures, and endpoints forgotten', async () => {
    const receiver = await startReceiver(SECRET, Number.POSITIVE_INFINITY, SECRET_PATH)
    let out = ''
    const log = createLogger('info', new Writable({ write: (chunk: Buffer, _e, cb) => ((out += chunk.toString()), cb()) }))
    const config = testConfig(freshSchema(), { webhooks: { urls: [receiver.url], secret: SECRET, timeoutMs: 2000, backoffBaseMs: 20, maxBackoffMs: 100 } })
    try {
      const first = await startService(config, log)
      // The feed has the shared PDS's history: something to deliver, and fail.
      await waitFor(async () => out.includes('webhook delivery failed'), 'a failure logged', 20_000)
      await first.stop()
      const second = await startService({ ...config, webhooks: { ...config.webhooks, urls: [] } }, log)
      await second.stop()
    } finally {
      await receiver.close()
    }
    expect(out).toContain('no longer configured')
    expect(out).toContain(endpointLabel(receiver.url))
    expect(out).not.toContain(PATH_SECRET)
    expect(out).not.toContain(QUERY_SECRET)
  })
})

describe('slow subscribers', () => {
  let h: Harness
  let alice: User
  let bob: User
  const clients: PushClient[] = []
  beforeAll(async () => {
    h = await startHarness({ push: { ...testConfig('x').push, slowTimeoutMs: 500 } })
    ;[alice, bob] = await Promise.all([createUser('sa'), createUser('sb')])
  })
  afterAll(async () => {
    for (const c of clients) c.ws.terminate()
    await h?.stop()
  })
  const connect = async (user: User, params: Record<string, string | number> = {}) => {
    const c = new PushClient(h.service.url, { token: await user.token('pub.chive.collabIndexer.subscribeInvites'), params })
    clients.push(c)
    await c.opened
    return c
  }
  // The client stops reading: what the service sends piles up in the socket buffers, then its own.
  const stall = (c: PushClient) => (c.ws as unknown as { _socket: Socket })._socket.pause()

  it('a stalled subscriber is cut with ConsumerTooSlow; the others keep receiving', async () => {
    const stalled = await connect(bob)
    const replaying = await connect(bob, { cursor: 0 })
    const healthy = await connect(bob)
    const inviter = await connect(alice)
    stall(stalled)
    stall(replaying)
    // Far more than the socket buffers and SUBSCRIBE_MAX_BUFFERED_BYTES (1 MB) hold: 12,000
    // changes of ~900 bytes, in one commit.
    const n = await generateProvenInvites(h.service.pool, { inviter: alice.did, invitees: [bob.did], perInvitee: 12_000, message: 'x'.repeat(450), tag: 'burst' })
    await waitFor(async () => healthy.changes.length >= n, `the healthy subscriber to receive ${n} changes`, 60_000)
    // A paused client does not even see its connection end: the service's count says it was cut.
    const health = await waitFor(async () => {
      const res = await h.get<{ push: { slowConsumersCut: number; subscribers: number } }>('_health')
      return res.body.push.slowConsumersCut === 2 && res.body.push
    }, 'the stalled subscribers to be cut', 30_000)
    expect(health.subscribers).toBe(2)
    for (const c of [stalled, replaying]) {
      ;(c.ws as unknown as { _socket: Socket })._socket.resume()
      await c.closed
      expect(c.changes.length).toBeLessThan(n)
    }
    // Ingest and the others go on.
    const node = await alice.node()
    const invite = await alice.invite(node, bob)
    await healthy.waitForChange((c) => c.invite.uri === invite.uri, 'a live push after the cut')
    await inviter.waitForChange((c) => c.invite.uri === invite.uri, 'the inviter too')
    const seqs = healthy.changes.map((c) => c.seq)
    expect(new Set(seqs).size).toBe(seqs.length)
    expect(healthy.errors).toEqual([])
  })
})
