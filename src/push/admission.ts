import type { IncomingMessage } from 'node:http'
import proxyAddr from '@fastify/proxy-addr'
import type { TrustProxy } from '../config.ts'
import { WindowCounter } from '../lib/limits.ts'

export interface AdmissionLimits {
  /** Connection attempts per client address per window, as for the API's requests; 0: no limit. */
  rateLimitMax: number
  rateLimitWindowMs: number
  /** Subscriptions open at once per client address (counted from the upgrade) and per caller. */
  maxPerAddress: number
  maxPerDid: number
  /** Which `X-Forwarded-For` hops name the client, as for the API (behind a proxy, the socket is the proxy's). */
  trustProxy: TrustProxy
}

/** Why a connection is refused before its upgrade: the HTTP answer's parts. */
export interface Refusal {
  status: string
  error: string
  message: string
  headers: string
}

/** Counts per key that hold only keys with a count: an idle address or caller costs nothing. */
class OpenCounts {
  private readonly counts = new Map<string, number>()
  take(key: string, max: number): boolean {
    const n = this.counts.get(key) ?? 0
    if (n >= max) return false
    this.counts.set(key, n + 1)
    return true
  }
  give(key: string): void {
    const n = (this.counts.get(key) ?? 1) - 1
    if (n <= 0) this.counts.delete(key)
    else this.counts.set(key, n)
  }
}

/**
 * Who may hold a subscription. Each stream holds a socket, a fanout listener and, while it
 * replays, database reads: without these caps one client (or one DID, which anyone can mint)
 * could hold thousands and crowd out everybody else.
 */
export class Admission {
  private readonly limits: AdmissionLimits
  // Upgrades do not pass through Fastify, so its rate limiter does not see them: each attempt
  // costs a token check (and, for an unknown issuer, a DID document fetch), so it is limited here.
  private readonly attempts: WindowCounter
  private readonly byAddress = new OpenCounts()
  private readonly byDid = new OpenCounts()

  constructor(limits: AdmissionLimits) {
    this.limits = limits
    this.attempts = new WindowCounter(limits.rateLimitMax, limits.rateLimitWindowMs)
  }

  /** The same addresses the API's limiter counts: every subscriber behind one proxy is not one client. */
  clientAddress(req: IncomingMessage): string {
    const trust = this.limits.trustProxy
    if (trust === false) return req.socket.remoteAddress ?? ''
    return proxyAddr(req, typeof trust === 'number' ? (_addr, hop) => hop < trust : trust)
  }

  /** Before the upgrade: null when admitted (release the address when the socket closes). */
  admitAddress(address: string): Refusal | null {
    const { rateLimitMax, rateLimitWindowMs, maxPerAddress } = this.limits
    const retryAfter = rateLimitMax > 0 ? this.attempts.take(address) : 0
    if (retryAfter > 0) {
      return {
        status: '429 Too Many Requests',
        error: 'RateLimitExceeded',
        message: `at most ${rateLimitMax} connections per ${rateLimitWindowMs / 1000} s; retry in ${retryAfter} s`,
        headers: `Retry-After: ${retryAfter}\r\n`,
      }
    }
    if (!this.byAddress.take(address, maxPerAddress)) {
      return {
        status: '429 Too Many Requests',
        error: 'RateLimitExceeded',
        message: `at most ${maxPerAddress} open subscriptions per client address; close one first`,
        headers: '',
      }
    }
    return null
  }

  releaseAddress(address: string): void {
    this.byAddress.give(address)
  }

  /** After auth: whether the caller may hold one more stream (release the DID when it ends). */
  admitCaller(did: string): boolean {
    return this.byDid.take(did, this.limits.maxPerDid)
  }

  releaseCaller(did: string): void {
    this.byDid.give(did)
  }
}
