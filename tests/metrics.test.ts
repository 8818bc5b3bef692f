import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LIST_INVITES, createUser, startHarness, waitFor, type Harness, type User } from './support/harness.ts'
import { views } from './support/views.ts'

let h: Harness
let alice: User
let bob: User

beforeAll(async () => {
  h = await startHarness()
  ;[alice, bob] = await Promise.all([createUser('mta'), createUser('mtb')])
})
afterAll(async () => {
  await h?.stop()
})

interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*'
// Prometheus reads values with Go's ParseFloat, which takes NaN and Inf in any case (prom-client writes "Nan").
const VALUE = '(?:[-+]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][-+]?\\d+)?|[-+]?[Ii]nf|[Nn]a[Nn])'
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`
const SAMPLE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*,?)?\\})? (${VALUE})(?: -?\\d+)?$`)
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])

/**
 * Parses the Prometheus text exposition format (0.0.4) strictly: every line is a HELP, a TYPE
 * or a sample of a declared family, or the test fails.
 */
const parseExposition = (text: string): { samples: Sample[]; types: Map<string, string> } => {
  const types = new Map<string, string>()
  const samples: Sample[] = []
  expect(text.endsWith('\n')).toBe(true)
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line)
    if (meta) {
      expect(meta[2]).toMatch(new RegExp(`^${NAME}$`))
      if (meta[1] === 'TYPE') {
        expect(TYPES.has(meta[3] as string), line).toBe(true)
        types.set(meta[2] as string, meta[3] as string)
      }
      continue
    }
    const m = SAMPLE.exec(line)
    expect(m, `not a sample line: ${line}`).not.toBeNull()
    const [, name = '', labelText = '', value = ''] = m as RegExpExecArray
    const family = [...types.keys()].find((f) => name === f || /^(_bucket|_sum|_count|_total|_created)$/.test(name.slice(f.length)) && name.startsWith(f))
    expect(family, `sample of an undeclared family: ${line}`).toBeDefined()
    const labels = Object.fromEntries([...labelText.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]))
    samples.push({ name, labels: labels as Record<string, string>, value: /^nan$/i.test(value) ? Number.NaN : Number(value.replace(/inf$/i, 'Infinity')) })
  }
  return { samples, types }
}

const scrape = async () => {
  const res = await fetch(`${h.service.url}/metrics`)
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
  return parseExposition(await res.text())
}

const value = (samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value

const P = 'chive_indexer_'

describe('GET /metrics', () => {
  it('serves valid Prometheus text whose counters move with real events', async () => {
    const v = views(h)
    await v.barrier(alice, bob)
    const before = await scrape()
    expect(before.types.get(`${P}frames_received_total`)).toBe('counter')
    expect(before.types.get(`${P}api_request_duration_seconds`)).toBe('histogram')
    expect(before.types.get(`${P}lag_seconds`)).toBe('gauge')
    const indexedBefore = value(before.samples, `${P}events_indexed_total`) as number
    const framesBefore = value(before.samples, `${P}frames_received_total`) as number
    expect(indexedBefore).toBeGreaterThan(0)

    const node = await alice.node()
    const invite = await alice.invite(node, bob)
    // A self-invite is rejected: it must show up under its reason.
    await alice.invite(node, alice)
    await v.waitForState(bob, invite.uri, 'pending')
    const after = await waitFor(async () => {
      const s = await scrape()
      return (value(s.samples, `${P}events_rejected_total`, { reason: 'self-invite' }) ?? 0) >= 1 ? s : undefined
    }, 'the rejection to be counted')
    expect(value(after.samples, `${P}events_indexed_total`)).toBeGreaterThan(indexedBefore)
    expect(value(after.samples, `${P}frames_received_total`)).toBeGreaterThan(framesBefore)
    expect(value(after.samples, `${P}relay_connected`)).toBe(1)
    expect(value(after.samples, `${P}lag_seconds`)).toBeGreaterThanOrEqual(0)
    expect(value(after.samples, `${P}verify_queue_depth`)).toBeGreaterThanOrEqual(0)
    expect(value(after.samples, `${P}database_up`)).toBe(1)
    // Subjects seen on the stream are proven in the ingest transaction: no proof fetch to count.
    for (const family of ['verify_outcomes_total', 'backfill_repos_synced_total', 'relay_reconnects_total']) {
      expect(after.types.get(P + family)).toBe('counter')
    }
    expect(after.types.get(`${P}backfill_repos_pending`)).toBe('gauge')
    const health = await h.get<{ cursor: number }>('_health')
    expect(value(after.samples, `${P}cursor`)).toBeLessThanOrEqual(health.body.cursor)
    expect(value(after.samples, `${P}cursor`)).toBeGreaterThan(0)
    // The listInvites calls made by the views above, under their route and status.
    const route = { route: `/xrpc/${LIST_INVITES}`, method: 'GET', status_code: '200' }
    expect(value(after.samples, `${P}api_request_duration_seconds_count`, route)).toBeGreaterThan(0)
    expect(value(after.samples, `${P}api_request_duration_seconds_bucket`, { ...route, le: '+Inf' })).toBe(
      value(after.samples, `${P}api_request_duration_seconds_count`, route),
    )
    // Paths that match no route share one label value.
    await fetch(`${h.service.url}/xrpc/no.such.method${Math.random()}`)
    const unmatched = await scrape()
    expect(value(unmatched.samples, `${P}api_request_duration_seconds_count`, { route: 'unmatched', status_code: '404' })).toBeGreaterThan(0)
    // Process metrics come with it.
    expect(value(unmatched.samples, 'process_cpu_user_seconds_total')).toBeGreaterThan(0)
  })
})
