import { createServer, type IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import WebSocket, { WebSocketServer } from 'ws'
import { decode, decodeAll } from '@atproto/lex-cbor'
import type { Cid } from '@atproto/lex-data'
import { lexToJson, type JsonObject } from '@atproto/lex-json'
import { readCar } from '@atproto/repo'

/**
 * A Jetstream stand-in: a Jetstream-compatible WebSocket endpoint fed by a real PDS's
 * `com.atproto.sync.subscribeRepos`, translated into Jetstream's documented JSON, that can be
 * made to lie (tamper, inject, raw garbage), stall, drop its subscribers and forget its past.
 *
 * - v1: `GET /subscribe?wantedCollections=&wantedDids=&cursor=<time_us>`.
 * - v2 (only with `v2: true`, else 404): `GET /xrpc/network.bsky.jetstream.subscribeEvents`
 *   with the `xrpc.v1.json` subprotocol and `collections`, `kinds`, `dids`, `cursor`.
 *
 * Every event (from the PDS or injected) enters one in-memory buffer in order, with a `time_us`
 * (strictly increasing, assigned on arrival) and a stand-in `seq` (1, 2, ...; v2's cursor).
 * Replays and live delivery both read that buffer, so what was altered or dropped stays so on
 * every replay, and a replay and the live tail neither skip nor repeat an event.
 *
 * Not modelled: v1's `compress` (zstd), `requireHello`, `maxMessageSizeBytes` and client
 * `options_update` messages (ignored); slow-consumer disconnects; retention is in memory only.
 */

export const V1_PATH = '/subscribe'
export const V2_NSID = 'network.bsky.jetstream.subscribeEvents'
export const V2_PATH = `/xrpc/${V2_NSID}`
export const V2_SUBPROTOCOL = 'xrpc.v1.json'
/** v2 reads a cursor this large as a `time_us`, a smaller one as a `seq`. */
export const V2_TIME_CURSOR_MIN = 1e15

export type CommitOperation = 'create' | 'update' | 'delete'

interface EventBase {
  did: string
  /** Microseconds since the epoch, assigned by the stand-in on arrival; strictly increasing. */
  time_us: number
}

export interface JetstreamCommitEvent extends EventBase {
  kind: 'commit'
  commit: {
    rev: string
    operation: CommitOperation
    collection: string
    rkey: string
    /** The record in ATProto JSON form (`{$link}`, `{$bytes}`); absent on delete. */
    record?: JsonObject
    /** The record's CID as a string; absent on delete. */
    cid?: string
  }
}

export interface JetstreamIdentityEvent extends EventBase {
  kind: 'identity'
  identity: { did: string; handle?: string; seq: number; time: string }
}

export interface JetstreamAccountEvent extends EventBase {
  kind: 'account'
  account: { active: boolean; did: string; seq: number; time: string; status?: string }
}

/**
 * The firehose's `#sync` (a repo's state asserted without a diff). v1 never sends it (Jetstream
 * v1 has no such kind); v2 sends it as `#sync`. Its shape here mirrors the other kinds.
 */
export interface JetstreamSyncEvent extends EventBase {
  kind: 'sync'
  sync: { did: string; rev: string; seq: number; time: string }
}

/** An event in Jetstream v1's JSON shape (v2 frames are derived from it). */
export type JetstreamEvent = JetstreamCommitEvent | JetstreamIdentityEvent | JetstreamAccountEvent | JetstreamSyncEvent
export type JetstreamKind = JetstreamEvent['kind']
export const JETSTREAM_KINDS: readonly JetstreamKind[] = ['commit', 'identity', 'account', 'sync']

/** `Omit` over each member of a union (plain `Omit` would merge the kinds into one shape). */
export type WithoutTime<E> = E extends unknown ? Omit<E, 'time_us'> : never

/** A buffered event with the stand-in's own sequence number (v2's `seq`). */
export interface RetainedEvent {
  seq: number
  event: JetstreamEvent
  /** The ISO time v2 frames carry: the firehose frame's `time`, or `time_us`'s for injected events. */
  time: string
}

/** A v2 `message` frame's payload: the event flattened, with its `$type`, `seq`, `time` and `time_us`. */
export type V2Payload = { $type: string; seq: number; did: string; time: string; time_us: number } & Record<string, unknown>

export interface JetstreamStandIn {
  /** `ws://127.0.0.1:PORT`: v1 at `/subscribe`, v2 at `/xrpc/network.bsky.jetstream.subscribeEvents`. */
  url: string
  stats: {
    /** Frames read from the PDS's firehose. */
    upstreamFrames: number
    /** Event frames sent to subscribers (one per event per subscriber; raw frames included). */
    eventsSent: number
    /** UTF-8 bytes of every text frame sent to subscribers (what a client's socket receives, before framing). */
    bytesSent: number
    /** Subscriptions accepted (upgraded), ever. */
    connections: number
    /** Events a `tamper` rewrite dropped. */
    dropped: number
    /** Events a `tamper` rewrite altered. */
    altered: number
    /** Events `inject` invented plus raw frames `sendRaw` sent. */
    injected: number
  }
  /** Each subscription attempt's query on a served endpoint, in order (rejected ones included). */
  queries: URLSearchParams[]
  /** Subscribers connected now. */
  connected(): number
  /** The buffer as it stands (oldest first): what a replay can give. */
  retained(): readonly RetainedEvent[]
  /**
   * Rewrites (or drops, when `rewrite` returns null) the first event from the PDS, from now on,
   * that `match` accepts; resolves with the original event once applied. The rewritten event
   * keeps the original's `time_us` (the buffer stays in order); it is what every subscriber and
   * every later replay sees. Injected events are not matched.
   */
  tamper(match: (e: JetstreamEvent) => boolean, rewrite: (e: JetstreamEvent) => JetstreamEvent | null): Promise<JetstreamEvent>
  /** Invents an event (assigned a `time_us` and `seq`), delivered to subscribers and kept in the buffer. */
  inject(e: WithoutTime<JetstreamEvent>): JetstreamEvent
  /**
   * Sends `text` as is (garbage JSON, a v2 error frame, ...) to every subscriber of `endpoint`
   * (default both) now: it bypasses the buffer (never replayed) and a stall.
   */
  sendRaw(text: string, endpoint?: 'v1' | 'v2'): void
  /** While on: connections stay open, nothing is sent; on release everything held is sent in order. */
  stall(on: boolean): void
  /** Closes every subscriber connection abruptly (no close frame: the client sees 1006). */
  disconnectAll(): void
  /** While on: every subscription attempt is answered 503 (an instance restarting); the buffer keeps filling. */
  refuse(on: boolean): void
  /**
   * Drops buffered events with `time_us < beforeUs` (retention running out): v1 cursors before
   * it start at the oldest retained event, v2 cursors before it get `CursorTooOld`.
   */
  forget(beforeUs: number): void
  close(): Promise<void>
}

export interface JetstreamStandInOptions {
  /** The PDS's base URL (http(s)://); its firehose is followed over ws(s)://. */
  pdsUrl: string
  /** Offer the v2 endpoint; otherwise it answers 404. */
  v2?: boolean
  /** Forget events older than this, continuously (as `forget(now - retentionMs)` would). */
  retentionMs?: number
  /**
   * Follow the PDS's firehose from after this seq (its backlog is then translated too, with
   * `time_us` of when the stand-in read it). Default: from its live head, so only what is written
   * after `startJetstreamStandIn` resolves is seen.
   */
  pdsCursor?: number
}

interface Subscriber {
  ws: WebSocket
  endpoint: 'v1' | 'v2'
  accepts: (e: JetstreamEvent) => boolean
  /** The seq of the last buffered event this subscriber was given or filtered out. */
  lastSeq: number
}

interface Rule {
  match: (e: JetstreamEvent) => boolean
  rewrite: (e: JetstreamEvent) => JetstreamEvent | null
  resolve: (original: JetstreamEvent) => void
  reject: (err: Error) => void
}

/** Thrown while reading a subscription's query: answered with HTTP 400 before any upgrade. */
class BadRequest extends Error {
  readonly error: string
  constructor(error: string, message: string) {
    super(message)
    this.error = error
  }
}

/** `pub.chive.*` covers every NSID under `pub.chive.`; anything else must match exactly. */
const collectionMatcher = (wanted: string[]): ((collection: string) => boolean) => {
  if (wanted.length === 0) return () => true
  const exact = new Set(wanted.filter((w) => !w.endsWith('.*')))
  const prefixes = wanted.filter((w) => w.endsWith('.*')).map((w) => w.slice(0, -1))
  return (c) => exact.has(c) || prefixes.some((p) => c.startsWith(p))
}

/** Repeated parameters, also tolerating comma-separated lists (NSIDs and DIDs hold no commas). */
const listParam = (q: URLSearchParams, name: string): string[] =>
  q
    .getAll(name)
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '')

const integerParam = (q: URLSearchParams, name: string): number | undefined => {
  const raw = q.get(name)
  if (raw === null || raw === '') return undefined
  const n = Number(raw)
  if (!Number.isSafeInteger(n) || n < 0) throw new BadRequest('InvalidRequest', `${name} must be a non-negative integer, got ${raw}`)
  return n
}

const isoOfUs = (us: number): string => new Date(Math.floor(us / 1000)).toISOString()

/** The v2 payload of a buffered event. */
export const v2PayloadOf = (r: RetainedEvent): V2Payload => {
  const e = r.event
  const base = { seq: r.seq, did: e.did, time: r.time, time_us: e.time_us }
  switch (e.kind) {
    case 'commit': {
      const { rev, operation, collection, rkey, cid, record } = e.commit
      return {
        $type: `${V2_NSID}#commit`,
        ...base,
        rev,
        operation,
        collection,
        rkey,
        ...(cid !== undefined ? { cid } : {}),
        ...(record !== undefined ? { record } : {}),
      }
    }
    case 'identity':
      return { $type: `${V2_NSID}#identity`, ...base, ...(e.identity.handle !== undefined ? { handle: e.identity.handle } : {}) }
    case 'account':
      return { $type: `${V2_NSID}#account`, ...base, active: e.account.active, ...(e.account.status !== undefined ? { status: e.account.status } : {}) }
    case 'sync':
      return { $type: `${V2_NSID}#sync`, ...base, rev: e.sync.rev }
  }
}

/** A v2 error frame, for `sendRaw` (Jetstream v2 sends one before closing on a fatal condition). */
export const v2ErrorFrame = (error: string, message: string): string => JSON.stringify({ $type: 'error', error, message })

/** The firehose body fields the translation reads (decoded by `@atproto/lex-cbor`: CIDs as `Cid`). */
interface FirehoseCommit {
  repo: string
  rev: string
  time: string
  blocks: Uint8Array
  ops: { action: string; path: string; cid: Cid | null }[]
}

const wsBase = (pdsUrl: string): string => pdsUrl.replace(/^http(s?):\/\//, 'ws$1://').replace(/\/+$/, '')

export const startJetstreamStandIn = async (opts: JetstreamStandInOptions): Promise<JetstreamStandIn> => {
  const stats: JetstreamStandIn['stats'] = { upstreamFrames: 0, eventsSent: 0, bytesSent: 0, connections: 0, dropped: 0, altered: 0, injected: 0 }
  const queries: URLSearchParams[] = []
  const buffer: RetainedEvent[] = []
  const subscribers = new Set<Subscriber>()
  const rules: Rule[] = []
  let nextSeq = 1
  let lastTimeUs = 0
  /** Events with a `time_us` below this, or a `seq` below `horizonSeq`, may have been forgotten. */
  let horizonUs = 0
  let horizonSeq = 0
  let stalled = false
  let closed = false

  // Strictly increasing even within one millisecond (Date.now() is all a wall clock gives).
  const nextTimeUs = (): number => {
    const now = Date.now() * 1000
    lastTimeUs = now > lastTimeUs ? now : lastTimeUs + 1
    return lastTimeUs
  }

  /** Drops the buffer's prefix with `time_us < beforeUs`. */
  const forgetBefore = (beforeUs: number) => {
    horizonUs = Math.max(horizonUs, beforeUs)
    let n = 0
    while (n < buffer.length && (buffer[n] as RetainedEvent).event.time_us < beforeUs) n++
    if (n === 0) return
    horizonSeq = (buffer[n - 1] as RetainedEvent).seq + 1
    buffer.splice(0, n)
  }
  const applyRetention = () => {
    if (opts.retentionMs !== undefined) forgetBefore(Date.now() * 1000 - opts.retentionMs * 1000)
  }

  /** Index of the first buffered event with `seq > after` (the buffer is in seq order). */
  const indexAfterSeq = (after: number): number => {
    let lo = 0
    let hi = buffer.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if ((buffer[mid] as RetainedEvent).seq > after) hi = mid
      else lo = mid + 1
    }
    return lo
  }

  const sendText = (sub: Subscriber, text: string) => {
    sub.ws.send(text)
    stats.eventsSent++
    stats.bytesSent += Buffer.byteLength(text)
  }

  const encodeFor = (sub: Subscriber, r: RetainedEvent): string =>
    sub.endpoint === 'v1' ? JSON.stringify(r.event) : JSON.stringify({ $type: 'message', payload: v2PayloadOf(r) })

  /** Sends a subscriber everything buffered after its `lastSeq` that it wants (unless stalled). */
  const pump = (sub: Subscriber) => {
    if (stalled || sub.ws.readyState !== WebSocket.OPEN) return
    for (let i = indexAfterSeq(sub.lastSeq); i < buffer.length; i++) {
      const r = buffer[i] as RetainedEvent
      sub.lastSeq = r.seq
      if (sub.accepts(r.event)) sendText(sub, encodeFor(sub, r))
    }
  }
  const pumpAll = () => {
    for (const sub of subscribers) pump(sub)
  }

  const append = (event: JetstreamEvent, time: string): RetainedEvent => {
    const r: RetainedEvent = { seq: nextSeq++, event, time }
    buffer.push(r)
    applyRetention()
    pumpAll()
    return r
  }

  /** An event from the PDS: given its `time_us`, passed through the first matching rule, buffered. */
  const arrive = (event: WithoutTime<JetstreamEvent>, time: string) => {
    const original = { ...event, time_us: nextTimeUs() } as JetstreamEvent
    const i = rules.findIndex((r) => r.match(original))
    const rule = i === -1 ? undefined : rules.splice(i, 1)[0]
    if (!rule) {
      append(original, time)
      return
    }
    const rewritten = rule.rewrite(structuredClone(original))
    if (rewritten === null) {
      stats.dropped++
    } else {
      stats.altered++
      // Kept in order: a rewrite cannot move an event in time.
      append({ ...rewritten, time_us: original.time_us } as JetstreamEvent, time)
    }
    rule.resolve(original)
  }

  /** One firehose frame: a commit becomes one event per op, all with the commit's rev. */
  const handleFrame = async (bytes: Uint8Array) => {
    stats.upstreamFrames++
    const [header, body] = [...decodeAll(bytes)] as [Record<string, unknown> | undefined, Record<string, unknown> | undefined]
    if (!header || !body || header.op !== 1) return // error frames: the reconnect takes care of it
    if (typeof body.seq === 'number') upstreamSeq = body.seq
    const time = typeof body.time === 'string' ? body.time : new Date().toISOString()
    switch (header.t) {
      case '#commit': {
        const c = body as unknown as FirehoseCommit
        const car = await readCar(c.blocks)
        for (const op of c.ops) {
          const slash = op.path.indexOf('/')
          const collection = op.path.slice(0, slash)
          const rkey = op.path.slice(slash + 1)
          if (op.action === 'delete' || !op.cid) {
            arrive({ did: c.repo, kind: 'commit', commit: { rev: c.rev, operation: 'delete', collection, rkey } }, time)
            continue
          }
          const block = car.blocks.get(op.cid)
          // A commit without the record's block (tooBig, or a PDS bug) gives an event without a record.
          const record = block ? (lexToJson(decode(block)) as JsonObject) : undefined
          const operation: CommitOperation = op.action === 'update' ? 'update' : 'create'
          arrive(
            {
              did: c.repo,
              kind: 'commit',
              commit: { rev: c.rev, operation, collection, rkey, ...(record ? { record } : {}), cid: op.cid.toString() },
            },
            time,
          )
        }
        return
      }
      case '#identity': {
        const b = body as { did: string; seq: number; time: string; handle?: string }
        arrive({ did: b.did, kind: 'identity', identity: { did: b.did, ...(b.handle !== undefined ? { handle: b.handle } : {}), seq: b.seq, time: b.time } }, time)
        return
      }
      case '#account': {
        const b = body as { did: string; seq: number; time: string; active: boolean; status?: string }
        arrive(
          {
            did: b.did,
            kind: 'account',
            account: { active: b.active, did: b.did, seq: b.seq, time: b.time, ...(b.status !== undefined ? { status: b.status } : {}) },
          },
          time,
        )
        return
      }
      case '#sync': {
        const b = body as { did: string; seq: number; time: string; rev: string }
        arrive({ did: b.did, kind: 'sync', sync: { did: b.did, rev: b.rev, seq: b.seq, time: b.time } }, time)
        return
      }
      default:
        return // #info and kinds Jetstream does not carry
    }
  }

  // --- The PDS's firehose, followed in order (frames are handled one at a time) ---
  let upstreamSeq: number | undefined = opts.pdsCursor
  let upstream: WebSocket | undefined
  let chain: Promise<void> = Promise.resolve()
  const firehose = wsBase(opts.pdsUrl)
  const connectUpstream = () =>
    new Promise<void>((resolve, reject) => {
      const cursor = upstreamSeq === undefined ? '' : `?cursor=${upstreamSeq}`
      const ws = new WebSocket(`${firehose}/xrpc/com.atproto.sync.subscribeRepos${cursor}`)
      upstream = ws
      ws.once('open', () => resolve())
      ws.once('error', reject)
      ws.on('error', () => {})
      ws.on('message', (data: Buffer) => {
        const bytes = new Uint8Array(data)
        chain = chain.then(() => handleFrame(bytes)).catch((err: unknown) => {
          console.error('jetstream stand-in: firehose frame not handled', err)
        })
      })
      ws.on('close', () => {
        // The PDS went away: follow it again from the last seq read (live if none was read).
        if (!closed) setTimeout(() => void chain.then(() => (closed ? undefined : connectUpstream())).catch(() => {}), 200)
      })
    })
  await connectUpstream()
  // Live mode: the PDS registers its listener in the connection's handler, which may finish a
  // moment after our 'open'; a write in that moment would be missed, so let it settle.
  if (opts.pdsCursor === undefined) await new Promise((r) => setTimeout(r, 100))

  // --- Subscribers ---
  /** The seq just before the first buffered event with `time_us >= us` (so replay includes it). */
  const seqBeforeTime = (us: number): number => {
    const first = buffer.find((r) => r.event.time_us >= us)
    return first ? first.seq - 1 : nextSeq - 1
  }

  /** Reads a v1 query into a filter and a starting point; throws BadRequest. */
  const v1Subscription = (q: URLSearchParams): Pick<Subscriber, 'accepts' | 'lastSeq'> => {
    const collections = collectionMatcher(listParam(q, 'wantedCollections'))
    const dids = new Set(listParam(q, 'wantedDids'))
    const cursor = integerParam(q, 'cursor')
    const accepts = (e: JetstreamEvent) =>
      e.kind !== 'sync' && (dids.size === 0 || dids.has(e.did)) && (e.kind !== 'commit' || collections(e.commit.collection))
    // A cursor older than the oldest retained event starts there, silently, as Jetstream does.
    return { accepts, lastSeq: cursor === undefined ? nextSeq - 1 : seqBeforeTime(cursor) }
  }

  const v2Subscription = (q: URLSearchParams): Pick<Subscriber, 'accepts' | 'lastSeq'> => {
    const collections = collectionMatcher(listParam(q, 'collections'))
    const dids = new Set(listParam(q, 'dids'))
    const kindsList = listParam(q, 'kinds')
    for (const k of kindsList) {
      if (!(JETSTREAM_KINDS as readonly string[]).includes(k)) throw new BadRequest('InvalidRequest', `unknown kind: ${k}`)
    }
    const kinds = new Set(kindsList.length === 0 ? JETSTREAM_KINDS : kindsList)
    const cursor = integerParam(q, 'cursor')
    const accepts = (e: JetstreamEvent) =>
      kinds.has(e.kind) && (dids.size === 0 || dids.has(e.did)) && (e.kind !== 'commit' || collections(e.commit.collection))
    if (cursor === undefined) return { accepts, lastSeq: nextSeq - 1 }
    applyRetention()
    if (cursor >= V2_TIME_CURSOR_MIN) {
      if (cursor < horizonUs) throw new BadRequest('CursorTooOld', `cursor ${cursor} is older than the retained events (from time_us ${horizonUs})`)
      return { accepts, lastSeq: seqBeforeTime(cursor) }
    }
    // A seq cursor is inclusive, like a time_us one: the event at it is sent again (at-least-once).
    if (cursor < horizonSeq) throw new BadRequest('CursorTooOld', `cursor ${cursor} is older than the retained events (from seq ${horizonSeq})`)
    return { accepts, lastSeq: Math.min(Math.max(cursor - 1, 0), nextSeq - 1) }
  }

  const refuse = (socket: Duplex, status: number, reason: string, body: { error: string; message: string }) => {
    const json = JSON.stringify(body)
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\nConnection: close\r\n\r\n${json}`,
    )
  }

  let refusing = false
  const wss = new WebSocketServer({
    noServer: true,
    // v2 answers in the subprotocol it was asked for; v1 has none.
    handleProtocols: (protocols) => (protocols.has(V2_SUBPROTOCOL) ? V2_SUBPROTOCOL : false),
  })
  const server = createServer((req, res) => {
    // Plain HTTP on a stream endpoint is a client that forgot to upgrade.
    const known = req.url?.startsWith(V1_PATH) || (opts.v2 === true && req.url?.startsWith(V2_PATH))
    res.writeHead(known ? 426 : 404, { 'content-type': 'application/json' })
    res.end(JSON.stringify(known ? { error: 'UpgradeRequired', message: 'this endpoint is a WebSocket' } : { error: 'NotFound', message: 'not found' }))
  })
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {})
    const url = new URL(req.url ?? '/', 'http://x')
    const endpoint = url.pathname === V1_PATH ? 'v1' : url.pathname === V2_PATH && opts.v2 === true ? 'v2' : undefined
    if (!endpoint || closed) return refuse(socket, 404, 'Not Found', { error: 'NotFound', message: `no stream at ${url.pathname}` })
    if (refusing) return refuse(socket, 503, 'Service Unavailable', { error: 'Unavailable', message: 'the instance is restarting' })
    queries.push(url.searchParams)
    let sub: Pick<Subscriber, 'accepts' | 'lastSeq'>
    try {
      if (endpoint === 'v2') {
        const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim())
        // Strict on purpose: a client that forgets the subprotocol would fail on a real v2 server.
        if (!offered.includes(V2_SUBPROTOCOL)) throw new BadRequest('InvalidRequest', `the ${V2_SUBPROTOCOL} subprotocol is required`)
      }
      sub = endpoint === 'v1' ? v1Subscription(url.searchParams) : v2Subscription(url.searchParams)
    } catch (err) {
      if (err instanceof BadRequest) return refuse(socket, 400, 'Bad Request', { error: err.error, message: err.message })
      throw err
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      stats.connections++
      const s: Subscriber = { ws, endpoint, ...sub }
      subscribers.add(s)
      ws.on('error', () => {})
      ws.on('close', () => subscribers.delete(s))
      // Clients never need to talk to us (v1's options_update is not supported): ignore input.
      ws.on('message', () => {})
      // Synchronous with delivery (which only runs between messages): nothing missed or repeated.
      pump(s)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const { port } = server.address() as { port: number }

  return {
    url: `ws://127.0.0.1:${port}`,
    stats,
    queries,
    connected: () => subscribers.size,
    retained: () => {
      applyRetention()
      return [...buffer]
    },
    tamper(match, rewrite) {
      const applied = new Promise<JetstreamEvent>((resolve, reject) => {
        rules.push({ match, rewrite, resolve, reject })
      })
      // A test that fails before awaiting it must not also leave a rejection unhandled.
      applied.catch(() => {})
      return applied
    },
    inject(e) {
      stats.injected++
      const event = { ...e, time_us: nextTimeUs() } as JetstreamEvent
      append(event, isoOfUs(event.time_us))
      return event
    },
    sendRaw(text, endpoint) {
      stats.injected++
      for (const sub of subscribers) {
        if ((endpoint === undefined || sub.endpoint === endpoint) && sub.ws.readyState === WebSocket.OPEN) sendText(sub, text)
      }
    },
    stall(on) {
      stalled = on
      if (!on) pumpAll()
    },
    disconnectAll() {
      for (const sub of subscribers) sub.ws.terminate()
    },
    refuse(on) {
      refusing = on
    },
    forget(beforeUs) {
      forgetBefore(beforeUs)
    },
    async close() {
      closed = true
      upstream?.terminate()
      for (const rule of rules.splice(0)) rule.reject(new Error('jetstream stand-in closed before the rule applied'))
      for (const sub of subscribers) sub.ws.terminate()
      await new Promise<void>((resolve) => wss.close(() => resolve()))
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
