import { describe, expect, it } from 'vitest'
import type { FastifyRequest } from 'fastify'
import { createLogger } from '../src/lib/log.ts'
import { ModeratorAuth, NO_PASSWORD } from '../src/api/admin-auth.ts'
import type { ServiceAuth } from '../src/api/auth.ts'
import { authRequired, XrpcError } from '../src/api/errors.ts'

const NSID = 'pub.chive.collabIndexer.admin.listBlockedInviters'

const serviceAuth: ServiceAuth = {
  verify: async () => {
    throw authRequired('bad token')
  },
  verifyToken: async () => {
    throw authRequired('bad token')
  },
}

const request = (authorization: string) => ({ ip: '203.0.113.7', headers: { authorization } }) as unknown as FastifyRequest
const basic = (password: string) => `Basic ${Buffer.from(`dana:${password}`).toString('base64')}`

const auth = (password: string | undefined) =>
  new ModeratorAuth(
    { password, moderatorDids: ['did:plc:moderator'], maxAuthFailures: 2, authFailureWindowMs: 900_000, spamPerHour: 30, spamPerDay: 200 },
    serviceAuth,
    createLogger('silent'),
  )

/** The status of each try, in order. */
const statuses = async (a: ModeratorAuth, authorizations: string[]) => {
  const out: number[] = []
  for (const h of authorizations) {
    try {
      await a.verify(request(h), NSID)
      out.push(200)
    } catch (err) {
      if (!(err instanceof XrpcError)) throw err
      out.push(err.status)
    }
  }
  return out
}

describe('admin sign-in limit', () => {
  it('does not count passwords tried on a service without ADMIN_PASSWORD (they are told so, never locked out)', async () => {
    const a = auth(undefined)
    await expect(a.verify(request(basic('x')), NSID)).rejects.toThrow(NO_PASSWORD)
    expect(await statuses(a, Array.from({ length: 5 }, () => basic('guess')))).toEqual([401, 401, 401, 401, 401])
    // Bad tokens still count: that is the limit's purpose.
    expect(await statuses(a, ['Bearer a', 'Bearer b', 'Bearer c'])).toEqual([401, 401, 429])
  })

  it('counts wrong passwords when one is configured, and then refuses the right one too', async () => {
    expect(await statuses(auth('secret'), [basic('a'), basic('b'), basic('secret')])).toEqual([401, 401, 429])
  })
})
