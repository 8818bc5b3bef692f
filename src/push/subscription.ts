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
import { TIMER_MAX_MS } from '../lib/backoff.ts'
import { SUBSCRIBE_INVITES } from '../atproto/lexicons.ts'
import { Admission, type AdmissionLimits } from './admission.ts'
import { BEARER_PROTOCOL, matches, parseParams, tokenOf, type Filter } from './subscription-request.ts'

export { SUBSCRIBE_INVITES }

const PATH = `/xrpc/${SUBSCRIBE_INVITES}`

export { BEARER_PROTOCOL }

export interface SubscriptionLimits extends AdmissionLimits {
  /** Bytes a subscriber may leave unread before it is cut with ConsumerTooSlow. */
  maxBufferedBytes: number
  /** How long a replaying subscriber may take to drain a full buffer before it is cut. */
  slowTimeoutMs: number
  /** Interval of WebSocket pings; a client that has not answered the previous one is dropped. */
  heartbeatMs: number
  /** Subscriptions this process serves at once. */
  maxConnections: number
  /** Tokens (and refreshes) whose `exp` is further ahead are refused. */
  maxTokenTtlSeconds: number
}

export interface SubscriptionDeps {
  /** The replays' own pool: a flood of `cursor=0` cannot take the queries' connections. */
  replayPool: Pool
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
// A PDS's clock may run ahead of ours: a token it minted for the longest allowed lifetime still passes.
const CLOCK_SKEW_SECONDS = 60

/**
 * A stream lasts until its token's `exp`; anyone can sign a token for a DID of their own with any
 * `exp`, so one further ahead than a PDS would mint is refused (and so is such a #refresh).
 */
const boundedLifetime = <T extends { exp: number }>(verified: T, maxSeconds: number): T => {
  if (verified.exp > Date.now() / 1000 + maxSeconds + CLOCK_SKEW_SECONDS) {
    throw new XrpcError(401, 'AuthenticationRequired', `the token's exp is more than ${maxSeconds} s ahead: use a shorter-lived token and #refresh it`)
  }
  return verified
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

  const admission = new Admission(limits)
  const answer = (socket: Duplex, status: string, error: string, message: string, headers = '') => {
    const body = JSON.stringify({ error, message })
    socket.end(`HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${headers}Connection: close\r\n\r\n${body}`)
  }

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    let url: URL
    try {
      url = new URL(req.url ?? '/', 'http://localhost')
    } catch {
      // A target such as `//[` is no URL: thrown here, it would take the process down.
      answer(socket, '400 Bad Request', 'InvalidRequest', 'malformed request target')
      return
    }
    if (url.pathname !== PATH && url.pathname !== `${PATH}/`) {
      answer(socket, '404 Not Found', 'NotFound', `no subscription at ${url.pathname}`)
      return
    }
    const address = admission.clientAddress(req)
    const refusal = admission.admitAddress(address)
    if (refusal) {
      answer(socket, refusal.status, refusal.error, refusal.message, refusal.headers)
      return
    }
    socket.once('close', () => admission.releaseAddress(address))
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
    let admitted: string | null = null
    let ended = false
    stats.connections++
    ws.on('error', () => {})
    const end = (error?: string, message?: string) => {
      if (ended) return
      ended = true
      stats.connections--
      if (listener) deps.fanout.remove(listener)
      if (expiry) clearTimeout(expiry)
      if (admitted !== null) admission.releaseCaller(admitted)
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
      // The replay's read ran past the statement timeout: the database is busy.
      if ((err as { code?: unknown }).code === '57014') return end('ServiceUnavailable', 'the replay timed out; reconnect with the last seq as cursor')
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
      const caller = boundedLifetime(await deps.auth.verifyToken(token, SUBSCRIBE_INVITES), limits.maxTokenTtlSeconds)
      const filter: Filter = { invitee: params.invitee, inviter: params.inviter, subjectUri: params.subjectUri }
      const scoped = filter.invitee !== undefined || filter.inviter !== undefined || filter.subjectUri !== undefined
      const subjectAuthor = filter.subjectUri === undefined ? undefined : new AtUri(filter.subjectUri).host
      if (scoped && filter.invitee !== caller.did && filter.inviter !== caller.did && subjectAuthor !== caller.did) {
        throw new XrpcError(403, 'Forbidden', 'the stream must be scoped to the caller: invitee, inviter or subjectUri authored by the caller')
      }
      if (ended) return
      if (!admission.admitCaller(caller.did)) {
        throw new XrpcError(429, 'RateLimitExceeded', `at most ${limits.maxPerDid} open subscriptions per caller; close one first`)
      }
      admitted = caller.did
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
        const renewed = boundedLifetime(await deps.auth.verifyToken(msg.token, SUBSCRIBE_INVITES), limits.maxTokenTtlSeconds)
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
        const bounds = await feedBounds(deps.replayPool)
        if (params.cursor > bounds.head) return end('FutureCursor', `cursor ${params.cursor} is ahead of the feed (${bounds.head})`)
        let position = params.cursor
        if (position < bounds.purgedThrough) {
          ws.send(infoFrame('OutdatedCursor', `changes up to ${bounds.purgedThrough} were purged; replaying from there`))
          position = bounds.purgedThrough
        }
        for (;;) {
          const page = await changesAfter(deps.replayPool, position, REPLAY_PAGE, caller.did)
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
