import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import type { Config } from '../config.ts'
import type { Moderator } from '../db/audit.ts'
import type { Logger } from '../lib/log.ts'
import { WindowCounter } from '../lib/limits.ts'
import type { ServiceAuth } from './auth.ts'
import { authRequired, forbidden, rateLimited, XrpcError } from './errors.ts'

export type AdminAccess = Config['admin']

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest()

const SESSION_HOURS = 8

/**
 * Moderator authentication: HTTP Basic with the admin password, a service-auth token from a
 * listed moderator DID, or (dashboard only) a session cookie signed with a key derived from
 * the password, so that changing the password ends every session. Failures are counted per
 * address; past the limit the address is refused, right password or not, until its window ends.
 */
/** Said to whoever tries a password on a service that has none. */
export const NO_PASSWORD = 'no admin password is configured on this service (set ADMIN_PASSWORD and restart it)'

export class ModeratorAuth {
  private readonly access: AdminAccess
  private readonly serviceAuth: ServiceAuth
  private readonly log: Logger
  /** Failed sign-ins per client address. */
  private readonly limiter: WindowCounter
  private readonly sessionKey: Buffer | null

  constructor(access: AdminAccess, serviceAuth: ServiceAuth, log: Logger) {
    this.access = access
    this.serviceAuth = serviceAuth
    this.log = log
    this.limiter = new WindowCounter(access.maxAuthFailures, access.authFailureWindowMs, 10_000)
    this.sessionKey = access.password === undefined ? null : digest(`admin-session\0${access.password}`)
  }

  /** The moderator calling admin method `nsid`; throws 401/403/429 XRPC errors. */
  async verify(req: FastifyRequest, nsid: string): Promise<Moderator> {
    this.assertNotLimited(req)
    const header = req.headers.authorization
    if (header === undefined) {
      throw authRequired('admin methods require HTTP Basic with the admin password or a moderator service-auth token')
    }
    const basic = /^Basic\s/i.test(header)
    // Not a wrong guess (no guess can be right): said as such, and not counted, as at sign-in.
    if (basic && !this.passwordConfigured) throw authRequired(NO_PASSWORD)
    try {
      if (basic) {
        const decoded = Buffer.from(header.replace(/^Basic\s+/i, '').trim(), 'base64').toString('utf8')
        const colon = decoded.indexOf(':')
        const user = colon === -1 ? '' : decoded.slice(0, colon)
        if (colon === -1 || !this.passwordMatches(decoded.slice(colon + 1))) throw authRequired('wrong admin password')
        return { actor: user.trim() || 'admin', kind: 'password' }
      }
      const did = await this.serviceAuth.verify(header, nsid)
      if (!this.access.moderatorDids.includes(did)) throw forbidden(`${did} is not a moderator`)
      return { actor: did, kind: 'service-auth' }
    } catch (err) {
      if (err instanceof XrpcError) this.failed(req, nsid, err.message)
      throw err
    }
  }

  /** Dashboard sign-in: the session cookie's value, or an XRPC error (counted when wrong). */
  signIn(req: FastifyRequest, name: string, password: string): string {
    this.assertNotLimited(req)
    // Not a wrong guess: no guess can be right, and the moderator must be told why.
    if (!this.passwordConfigured) throw authRequired(NO_PASSWORD)
    if (!this.passwordMatches(password)) {
      this.failed(req, 'dashboard', 'wrong admin password')
      throw authRequired('wrong admin password')
    }
    const expires = Math.floor(Date.now() / 1000) + SESSION_HOURS * 3600
    const payload = `${expires}.${Buffer.from(name.trim() || 'admin', 'utf8').toString('base64url')}`
    return `${payload}.${this.sign(payload)}`
  }

  /** The moderator of a dashboard session cookie, or null when absent, forged or expired. */
  session(cookie: string | undefined): Moderator | null {
    if (cookie === undefined || this.sessionKey === null) return null
    const [expires, name, mac] = cookie.split('.')
    if (!expires || name === undefined || !mac) return null
    const expected = Buffer.from(this.sign(`${expires}.${name}`))
    const given = Buffer.from(mac)
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null
    if (!/^\d+$/.test(expires) || Number(expires) * 1000 < Date.now()) return null
    return { actor: Buffer.from(name, 'base64url').toString('utf8'), kind: 'password' }
  }

  readonly sessionMaxAgeSeconds = SESSION_HOURS * 3600

  /** Whether ADMIN_PASSWORD is set: without it no password signs in. */
  get passwordConfigured(): boolean {
    return this.access.password !== undefined
  }

  private sign(payload: string): string {
    return createHmac('sha256', this.sessionKey ?? Buffer.alloc(32)).update(payload).digest('base64url')
  }

  private passwordMatches(given: string): boolean {
    // Without a configured password nothing matches, not even an empty one.
    if (this.access.password === undefined) return false
    return timingSafeEqual(digest(given), digest(this.access.password))
  }

  private assertNotLimited(req: FastifyRequest): void {
    const wait = this.limiter.retryAfter(req.ip)
    if (wait > 0) throw rateLimited(`too many failed admin sign-ins from this address; try again in ${wait} s`, wait)
  }

  private failed(req: FastifyRequest, method: string, reason: string): void {
    this.limiter.count(req.ip)
    this.log.warn({ ip: req.ip, method, reason, userAgent: req.headers['user-agent'] }, 'admin authentication failed')
  }
}
