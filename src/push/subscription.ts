import type { IncomingMessage, Server } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Lexicons } from '@atproto/lexicon'
import { AtUri } from '@atproto/syntax'
import { ErrorFrame, MessageFrame } from '@atproto/xrpc-server'
import { WebSocket, WebSocketServer, type RawData } from 'ws'
import type { Logger } from '../lib/log.ts'
import type { Pool } from '../db/pool.ts'
import { changesAfter, feedBounds, type InviteChange } from '../db/changes.ts'
import type { InviteRow } from '../db/queries.ts'
import type { ServiceAuth } from '../api/auth.ts'
import type { SubscriptionStats } from '../api/context.ts'
import { XrpcError, invalidRequest, isDatabaseUnavailable } from '../api/errors.ts'
import { changeFrame, type Fanout, type FeedListener } from './fanout.ts'
import { assertParams, defined } from '../api/params.ts'
import { Lru } from '../lib/lru.ts'
import { TIMER_MAX_MS } from '../lib/backoff.ts'
import proxyAddr from '@fastify/proxy-addr'
import type { TrustProxy } from '../config.ts'
import { SUBSCRIBE_INVITES } from '../atproto/lexicons.ts'

export { SUBSCRIBE_INVITES }

const PATH = `/xrpc/${SUBSCRIBE_INVITES}`

/** The subprotocol a browser offers beside its token (`new WebSocket(url, ['bearer', token])`); the one we select. */
export const BEARER_PROTOCOL = 'bearer'

export interface SubscriptionLimits {
  /** Bytes a subscriber may leave unread before it is cut with ConsumerTooSlow. */
  maxBufferedBytes: number
  /** How long a replaying subscriber may take to drain a full buffer before it is cut. */
  slowTimeoutMs: number
  /** Interval of WebSocket pings; a client that has not answered the previous one is dropped. */
  heartbeatMs: number
  /** Subscriptions this process serves at once. */
  maxConnections: number
  /** Connection attempts per client address per window, as for the API's requests; 0: no limit. */
  rateLimitMax: number
  rateLimitWindowMs: number
  /** Which `X-Forwarded-For` hops name the client, as for the API (behind a proxy, the socket is the proxy's). */
  trustProxy: TrustProxy
}

export interface SubscriptionDeps {
  pool: Pool
  lexicons: Lexicons
  auth: ServiceAuth
  fanout: Fanout
  limits: SubscriptionLimits
  log: Logger
}


const REPLAY_PAGE = 500
const REFRESH_TYPE = `${SUBSCRIBE_INVITES}#refresh`
// Policy violation: what @atproto/xrpc-server closes with after an error frame.
const CLOSE_POLICY = 1008

interface Filter {
  invitee?: string | undefined
  inviter?: string | undefined
  subjectUri?: string | undefined
}

const matches = (f: Filter, invite: InviteRow): boolean =>
  (f.invitee === undefined || invite.invitee === f.invitee) &&
  (f.inviter === undefined || invite.inviter === f.inviter) &&
  (f.subjectUri === undefined || invite.subjectUri === f.subjectUri)

const once = (params: URLSearchParams, name: string): string | undefined => {
  const all = params.getAll(name)
  if (all.length > 1) throw invalidRequest(`${name} must be given once`)
  return all[0]
}

const parseParams = (lexicons: Lexicons, url: URL): Filter & { cursor?: number | undefined } => {
  for (const name of url.searchParams.keys()) {
    if (!['cursor', 'invitee', 'inviter', 'subjectUri'].includes(name)) throw invalidRequest(`unknown parameter: ${name}`)
  }
  const rawCursor = once(url.searchParams, 'cursor')
  if (rawCursor !== undefined && !/^\d{1,15}$/.test(rawCursor)) throw invalidRequest('cursor must be a non-negative integer')
  const params = defined({
    cursor: rawCursor === undefined ? undefined : Number(rawCursor),
    invitee: once(url.searchParams, 'invitee'),
    inviter: once(url.searchParams, 'inviter'),
    subjectUri: once(url.searchParams, 'subjectUri'),
  })
  assertParams(lexicons, SUBSCRIBE_INVITES, params)
  return params
}

/** The token: `Authorization: Bearer` (servers), or the subprotocol after `bearer` (browsers). */
const tokenOf = (req: IncomingMessage): string | undefined => {
  const header = req.headers.authorization
  if (header !== undefined) return /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] ?? ''
  const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim())
  if (!offered.includes(BEARER_PROTOCOL)) return undefined
  return offered.find((p) => p !== BEARER_PROTOCOL && p !== '')
}

const errorFrame = (error: string, message: string): Uint8Array => new ErrorFrame({ error, message }).toBytes()
const infoFrame = (name: string, message: string): Uint8Array => new MessageFrame({ name, message }, { type: '#info' }).toBytes()

/**
 * `pub.chive.collabIndexer.subscribeInvites` on the API's HTTP server (upgrades of its path).
 * Each subscription: auth, then a replay from Postgres after `cursor` while live changes are
 * held back, then those (past the last replayed seq) and live; a subscriber that cannot keep
 * up is cut, so it costs the others nothing.
 */
export const attachSubscriptions = (server: Server, deps: SubscriptionDeps) => {
  const { limits, log } = deps
  const stats: SubscriptionStats = { connections: 0, slowConsumersCut: 0, expired: 0, refused: 0 }
  const wss = new WebSocketServer({
    noServer: true,
    // Clients send nothing but #refresh messages.
    maxPayload: 16 * 1024,
    perMessageDeflate: false,
    // A browser that offered ['bearer', token] must hear one of them back: never the token.
    handleProtocols: (protocols) => (protocols.has(BEARER_PROTOCOL) ? BEARER_PROTOCOL : false),
  })
  const alive = new WeakMap<WebSocket, boolean>()
  const heartbeat = setInterval(() => {
    for (const ws of wss.clients) {
      if (alive.get(ws) === false) {
        ws.terminate()
        continue
      }
      alive.set(ws, false)
      ws.ping()
    }
  }, limits.heartbeatMs)
  heartbeat.unref()

  // Upgrades do not pass through Fastify, so its rate limiter does not see them: each attempt
  // costs a token check (and, for an unknown issuer, a DID document fetch), so it is limited here.
  const attempts = new Lru<string, { count: number; resetAt: number }>(100_000)
  // The same addresses the API's limiter counts: every subscriber behind one proxy is not one client.
  const trust = limits.trustProxy
  const clientAddress = (req: IncomingMessage): string =>
    trust === false ? (req.socket.remoteAddress ?? '') : proxyAddr(req, typeof trust === 'number' ? (_addr, hop) => hop < trust : trust)
  const limited = (address: string): number | null => {
    if (limits.rateLimitMax <= 0) return null
    const now = Date.now()
    let entry = attempts.get(address)
    if (!entry || entry.resetAt <= now) attempts.set(address, (entry = { count: 0, resetAt: now + limits.rateLimitWindowMs }))
    entry.count++
    return entry.count > limits.rateLimitMax ? Math.ceil((entry.resetAt - now) / 1000) : null
  }
  const answer = (socket: Duplex, status: string, error: string, message: string, headers = '') => {
    const body = JSON.stringify({ error, message })
    socket.end(`HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${headers}Connection: close\r\n\r\n${body}`)
  }

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    if (url.pathname !== PATH && url.pathname !== `${PATH}/`) {
      answer(socket, '404 Not Found', 'NotFound', `no subscription at ${url.pathname}`)
      return
    }
    const retryAfter = limited(clientAddress(req))
    if (retryAfter !== null) {
      answer(socket, '429 Too Many Requests', 'RateLimitExceeded', `at most ${limits.rateLimitMax} connections per ${limits.rateLimitWindowMs / 1000} s; retry in ${retryAfter} s`, `Retry-After: ${retryAfter}\r\n`)
      return
    }
    socket.on('error', () => socket.destroy())
    wss.handleUpgrade(req, socket, head, (ws) => {
      alive.set(ws, true)
      ws.on('pong', () => alive.set(ws, true))
      void serve(ws, req, url, socket as Socket)
    })
  }
  server.on('upgrade', onUpgrade)

  const serve = async (ws: WebSocket, req: IncomingMessage, url: URL, socket: Socket): Promise<void> => {
    let listener: FeedListener | null = null
    let expiry: NodeJS.Timeout | null = null
    let ended = false
    stats.connections++
    ws.on('error', () => {})
    const end = (error?: string, message?: string) => {
      if (ended) return
      ended = true
      stats.connections--
      if (listener) deps.fanout.remove(listener)
      if (expiry) clearTimeout(expiry)
      if (error !== undefined && ws.readyState === WebSocket.OPEN) {
        ws.send(errorFrame(error, message ?? error))
        ws.close(CLOSE_POLICY, error)
        // A client that reads nothing will not complete the closing handshake either.
        setTimeout(() => ws.terminate(), 2000).unref()
      } else {
        ws.terminate()
      }
    }
    ws.on('close', () => end())
    const refuse = (err: unknown) => {
      stats.refused++
      if (err instanceof XrpcError) return end(err.error, err.message)
      if (isDatabaseUnavailable(err)) return end('ServiceUnavailable', 'the database is unavailable; reconnect with the last seq as cursor')
      log.error({ err }, 'subscription failed')
      end('InternalServerError', 'internal error')
    }
    try {
      if (stats.connections > limits.maxConnections) {
        return end('ServiceUnavailable', `this replica serves at most ${limits.maxConnections} subscriptions`)
      }
      const params = parseParams(deps.lexicons, url)
      const token = tokenOf(req)
      if (!token) throw new XrpcError(401, 'AuthenticationRequired', "a service-auth token is required: 'Authorization: Bearer <token>' or the subprotocols ['bearer', <token>]")
      const caller = await deps.auth.verifyToken(token, SUBSCRIBE_INVITES)
      const filter: Filter = { invitee: params.invitee, inviter: params.inviter, subjectUri: params.subjectUri }
      const scoped = filter.invitee !== undefined || filter.inviter !== undefined || filter.subjectUri !== undefined
      const subjectAuthor = filter.subjectUri === undefined ? undefined : new AtUri(filter.subjectUri).host
      if (scoped && filter.invitee !== caller.did && filter.inviter !== caller.did && subjectAuthor !== caller.did) {
        throw new XrpcError(403, 'Forbidden', 'the stream must be scoped to the caller: invitee, inviter or subjectUri authored by the caller')
      }
      if (ended) return
      const expireAt = (exp: number) => {
        if (expiry) clearTimeout(expiry)
        if (ended) return
        expiry = setTimeout(() => {
          stats.expired++
          end('ExpiredToken', 'the token expired: send a #refresh before exp, or reconnect with a new token and the last seq as cursor')
          // A longer delay than a timer holds would fire at once: such a stream ends after ~24 days.
        }, Math.min(TIMER_MAX_MS, Math.max(0, exp * 1000 - Date.now())))
        expiry.unref()
      }
      expireAt(caller.exp)
      ws.on('message', (data: RawData, isBinary: boolean) => {
        void refresh(data, isBinary).catch(refuse)
      })
      const refresh = async (data: RawData, isBinary: boolean) => {
        let msg: { $type?: unknown; token?: unknown }
        try {
          msg = isBinary ? {} : (JSON.parse(data.toString()) as typeof msg)
        } catch {
          msg = {}
        }
        if (msg.$type !== REFRESH_TYPE || typeof msg.token !== 'string') {
          throw invalidRequest(`the only message a client may send is a JSON ${REFRESH_TYPE} with a token`)
        }
        const renewed = await deps.auth.verifyToken(msg.token, SUBSCRIBE_INVITES)
        if (renewed.did !== caller.did) throw new XrpcError(403, 'Forbidden', 'a refresh must come from the same caller')
        expireAt(renewed.exp)
      }

      // Live changes that arrive during the replay wait here; past the buffer limit: too slow.
      let held: { change: InviteChange; frame: Uint8Array }[] | null = params.cursor === undefined ? null : []
      let heldBytes = 0
      let lastSent = -1
      const tooSlow = () => {
        stats.slowConsumersCut++
        end('ConsumerTooSlow', 'the client did not keep up; reconnect with the last seq received as cursor')
      }
      const send = (id: number, frame: Uint8Array): boolean => {
        if (ws.bufferedAmount + frame.byteLength > limits.maxBufferedBytes) {
          tooSlow()
          return false
        }
        ws.send(frame)
        lastSent = id
        return true
      }
      listener = {
        did: caller.did,
        receive(change, frame) {
          if (ended || change.id <= lastSent || !matches(filter, change.invite)) return
          if (held) {
            held.push({ change, frame })
            heldBytes += frame.byteLength
            if (heldBytes > limits.maxBufferedBytes) tooSlow()
            return
          }
          send(change.id, frame)
        },
      }
      // From here every change the fanout reads reaches the listener; the replay covers
      // everything up to what Postgres holds now, which includes all the fanout had read.
      deps.fanout.add(listener)
      if (params.cursor !== undefined) {
        const bounds = await feedBounds(deps.pool)
        if (params.cursor > bounds.head) return end('FutureCursor', `cursor ${params.cursor} is ahead of the feed (${bounds.head})`)
        let position = params.cursor
        if (position < bounds.purgedThrough) {
          ws.send(infoFrame('OutdatedCursor', `changes up to ${bounds.purgedThrough} were purged; replaying from there`))
          position = bounds.purgedThrough
        }
        for (;;) {
          const page = await changesAfter(deps.pool, position, REPLAY_PAGE, caller.did)
          for (const change of page) {
            position = change.id
            if (ended) return
            if (!change.invite || !matches(filter, change.invite)) continue
            const frame = changeFrame(change as InviteChange & { invite: InviteRow })
            // A replay goes as fast as the client reads, and no faster.
            if (ws.bufferedAmount + frame.byteLength > limits.maxBufferedBytes && !(await drained(ws, socket, limits))) return tooSlow()
            if (ended || !send(change.id, frame)) return
          }
          if (page.length < REPLAY_PAGE) break
        }
        lastSent = Math.max(lastSent, position)
        const pending = held ?? []
        held = null
        for (const { change, frame } of pending) {
          if (change.id > lastSent && !send(change.id, frame)) return
        }
      }
    } catch (err) {
      refuse(err)
    }
  }

  return {
    stats,
    close() {
      clearInterval(heartbeat)
      server.off('upgrade', onUpgrade)
      for (const ws of wss.clients) ws.terminate()
      wss.close()
    },
  }
}

/** Whether a subscriber's unsent bytes fall under the limit within the allowed time. */
const drained = (ws: WebSocket, socket: Socket, limits: SubscriptionLimits): Promise<boolean> => {
  if (ws.bufferedAmount <= limits.maxBufferedBytes / 2) return Promise.resolve(true)
  return new Promise((resolve) => {
    const check = () => {
      if (ws.bufferedAmount <= limits.maxBufferedBytes / 2) done(true)
    }
    const done = (ok: boolean) => {
      clearTimeout(timer)
      socket.off('drain', check)
      resolve(ok)
    }
    const timer = setTimeout(() => done(ws.bufferedAmount <= limits.maxBufferedBytes / 2), limits.slowTimeoutMs)
    socket.on('drain', check)
  })
}
