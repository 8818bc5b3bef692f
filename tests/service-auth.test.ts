import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { createServiceAuth } from '../src/api/auth.ts'
import { parseTrustProxy } from '../src/config.ts'
import { createIdResolver } from '../src/atproto/identity.ts'
import { startPlcSwitch, type PlcSwitch } from './support/fault-proxy.ts'
import { createUser, LIST_COLLABORATORS, SERVICE_DID, startHarness, testConfig, type Harness, type User } from './support/harness.ts'

/** The same token with one signature character changed: well-formed, badly signed. */
const badlySigned = (token: string): string => {
  const [header, payload, sig = ''] = token.split('.')
  const i = Math.floor(sig.length / 2)
  const c = sig[i] === 'A' ? 'B' : 'A'
  return `${header}.${payload}.${sig.slice(0, i)}${c}${sig.slice(i + 1)}`
}

describe('service auth and the DID directory', () => {
  let plc: PlcSwitch
  let h: Harness
  let user: User
  beforeAll(async () => {
    plc = await startPlcSwitch(inject('plcUrl'))
    h = await startHarness({ plcUrl: plc.url })
    user = await createUser('sauth')
  })
  afterAll(async () => {
    await h?.stop()
    await plc?.close()
  })

  it('badly signed tokens make at most one fresh DID fetch per DID per minute', async () => {
    const good = await user.token(LIST_COLLABORATORS)
    const bad = badlySigned(good)
    const subjectUri = `at://${user.did}/pub.chive.graph.node/x`
    const before = plc.asked(user.did)
    for (let i = 0; i < 8; i++) {
      const res = await h.get(LIST_COLLABORATORS, { subjectUri }, bad)
      expect(res.status).toBe(401)
    }
    // The first one resolves the DID and refreshes it once; the rest are answered from the cache.
    expect(plc.asked(user.did) - before).toBeLessThanOrEqual(2)
    const ok = await h.get(LIST_COLLABORATORS, { subjectUri }, good)
    expect(ok.status).toBe(200)
  })

  it('refreshes again once the minute has passed (a rotated key is still picked up)', async () => {
    let now = 1_000_000
    const idResolver = createIdResolver({ plcUrl: plc.url, allowPrivateNetwork: true })
    const auth = createServiceAuth(SERVICE_DID, idResolver, { now: () => now })
    const bad = badlySigned(await user.token(LIST_COLLABORATORS))
    const start = plc.asked(user.did)
    for (let i = 0; i < 5; i++) await expect(auth.verify(`Bearer ${bad}`, LIST_COLLABORATORS)).rejects.toThrow()
    expect(plc.asked(user.did) - start).toBe(2)
    now += 59_000
    await expect(auth.verify(`Bearer ${bad}`, LIST_COLLABORATORS)).rejects.toThrow()
    expect(plc.asked(user.did) - start).toBe(2)
    now += 1_000
    await expect(auth.verify(`Bearer ${bad}`, LIST_COLLABORATORS)).rejects.toThrow()
    expect(plc.asked(user.did) - start).toBe(3)
  })
})

describe('TRUST_PROXY', () => {
  it('takes a hop count or proxy addresses, never "every hop"', () => {
    expect(parseTrustProxy(undefined)).toBe(false)
    expect(parseTrustProxy('false')).toBe(false)
    expect(parseTrustProxy('0')).toBe(false)
    expect(parseTrustProxy('2')).toBe(2)
    // `true` as before meant every hop; it now means the one proxy in front.
    expect(parseTrustProxy('true')).toBe(1)
    expect(parseTrustProxy('10.0.0.1, 192.168.0.0/16 ::1')).toEqual(['10.0.0.1', '192.168.0.0/16', '::1'])
    expect(parseTrustProxy('loopback')).toEqual(['loopback'])
    expect(() => parseTrustProxy('proxy.example')).toThrow(/TRUST_PROXY/)
  })

  it('with one hop, a client cannot choose its address by writing X-Forwarded-For', async () => {
    const api = { ...testConfig('x').api, rateLimitMax: 3, rateLimitWindowMs: 60_000, trustProxy: 1 }
    const limited = await startHarness({ api })
    try {
      const statuses: number[] = []
      for (let i = 0; i < 5; i++) {
        // What a proxy in front forwards: whatever the client wrote, then the address it saw.
        const res = await fetch(new URL(`/xrpc/${LIST_COLLABORATORS}?subjectUri=at://did:plc:x/pub.chive.graph.node/y`, limited.service.url), {
          headers: { 'x-forwarded-for': `203.0.113.${i}, 198.51.100.7` },
        })
        statuses.push(res.status)
      }
      expect(statuses).toEqual([200, 200, 200, 429, 429])
      // Another client behind the same proxy has a budget of its own.
      const other = await fetch(new URL(`/xrpc/${LIST_COLLABORATORS}?subjectUri=at://did:plc:x/pub.chive.graph.node/y`, limited.service.url), {
        headers: { 'x-forwarded-for': '198.51.100.8' },
      })
      expect(other.status).toBe(200)
    } finally {
      await limited.stop()
    }
  })
})
