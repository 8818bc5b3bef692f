import { describe, expect, it } from 'vitest'
import { loadConfig } from '../src/config.ts'

/** loadConfig under these variables (undefined: unset), the rest of the environment as it is. */
const withEnv = <T>(vars: Record<string, string | undefined>, fn: () => T): T => {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]))
  const set = (values: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
  set(vars)
  try {
    return fn()
  } finally {
    set(saved)
  }
}

const JETSTREAM = 'wss://jetstream2.us-east.bsky.network'

describe('JETSTREAM_RECONCILE_HOURS', () => {
  const reconcileMs = (hours: string | undefined) => withEnv({ JETSTREAM_URL: JETSTREAM, JETSTREAM_RECONCILE_HOURS: hours }, () => loadConfig().jetstream?.reconcileMs)

  it('takes whole hours as before, and fractions, so that a staging box can see it within minutes', () => {
    expect(reconcileMs(undefined)).toBe(24 * 3_600_000)
    expect(reconcileMs('6')).toBe(6 * 3_600_000)
    expect(reconcileMs('0')).toBe(0)
    expect(reconcileMs('0.05')).toBe(3 * 60_000)
    expect(reconcileMs('.5')).toBe(30 * 60_000)
    expect(reconcileMs('1.25')).toBe(75 * 60_000)
  })

  it('refuses what is no number of hours, or so short a period that hosts would be asked without pause', () => {
    for (const bad of ['x', '-1', '1e3', '0x10', '1.', '0.001', String(24 * 365 + 1)]) {
      expect(() => reconcileMs(bad), bad).toThrow(/JETSTREAM_RECONCILE_HOURS/)
    }
  })
})

describe('ALLOW_PRIVATE_NETWORK', () => {
  const allowed = (vars: Record<string, string | undefined>) => withEnv({ ALLOW_PRIVATE_NETWORK: undefined, JETSTREAM_URL: undefined, ...vars }, () => loadConfig().allowPrivateNetwork)

  it('is off unless the operator turns it on, wherever the relay, the Jetstream or the PLC is', () => {
    expect(allowed({ RELAY_URL: 'ws://127.0.0.1:2583', PLC_URL: 'http://localhost:2582' })).toBe(false)
    expect(allowed({ RELAY_URL: 'wss://10.0.0.5', PLC_URL: undefined })).toBe(false)
    expect(allowed({ RELAY_URL: undefined, JETSTREAM_URL: 'ws://192.168.1.9:6008' })).toBe(false)
    expect(allowed({ RELAY_URL: 'wss://bsky.network', PLC_URL: undefined })).toBe(false)
  })

  it('is on when set, whatever the sources', () => {
    expect(allowed({ ALLOW_PRIVATE_NETWORK: 'true', RELAY_URL: 'wss://bsky.network' })).toBe(true)
    expect(allowed({ ALLOW_PRIVATE_NETWORK: 'true', RELAY_URL: 'ws://127.0.0.1:2583' })).toBe(true)
    expect(allowed({ ALLOW_PRIVATE_NETWORK: 'false', RELAY_URL: 'ws://127.0.0.1:2583' })).toBe(false)
  })
})
