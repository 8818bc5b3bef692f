import http from 'node:http'
import type { AddressInfo } from 'node:net'

export type ProxyMode = 'up' | 'down' | 'unavailable' | 'rate-limited'

export interface FaultProxy {
  url: string
  mode: ProxyMode
  /** The Retry-After a `rate-limited` answer carries (a hostile host may say 99999999). */
  retryAfter: string
  /** Requests seen, by mode at the time they arrived. */
  seen: Record<ProxyMode, number>
  close(): Promise<void>
}

const listen = async (server: http.Server): Promise<string> => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

const forward = async (target: string, req: http.IncomingMessage, res: http.ServerResponse, rewrite?: (body: string) => string) => {
  const upstream = await fetch(new URL(req.url ?? '/', target), { method: req.method, redirect: 'manual' })
  const bytes = Buffer.from(await upstream.arrayBuffer())
  const body = rewrite ? Buffer.from(rewrite(bytes.toString('utf8'))) : bytes
  res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/octet-stream' })
  res.end(body)
}

/**
 * An HTTP proxy in front of a real PDS whose availability a test switches: `down` resets the
 * connection, `unavailable` answers 503, `rate-limited` answers 429 with Retry-After.
 */
export const startFaultProxy = async (target: string): Promise<FaultProxy> => {
  const proxy: FaultProxy = { url: '', mode: 'up', retryAfter: '1', seen: { up: 0, down: 0, unavailable: 0, 'rate-limited': 0 }, close: async () => {} }
  const server = http.createServer((req, res) => {
    proxy.seen[proxy.mode]++
    switch (proxy.mode) {
      case 'down':
        req.socket.destroy()
        return
      case 'unavailable':
        res.writeHead(503).end()
        return
      case 'rate-limited':
        res.writeHead(429, { 'retry-after': proxy.retryAfter, 'content-type': 'application/json' })
        res.end(JSON.stringify({ error: 'RateLimitExceeded', message: 'slow down' }))
        return
      case 'up':
        forward(target, req, res).catch(() => req.socket.destroy())
    }
  })
  proxy.url = await listen(server)
  proxy.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
  return proxy
}

/**
 * A PLC directory front that serves the real directory's DID documents with one PDS endpoint
 * replaced (for every DID, or only `onlyDids`), so that a service resolving through it reaches
 * that PDS only through a proxy.
 */
export const startPlcFront = async (plcUrl: string, pdsUrl: string, replacement: string, onlyDids?: readonly string[]) => {
  const server = http.createServer((req, res) => {
    const applies = !onlyDids || onlyDids.some((did) => decodeURIComponent(req.url ?? '').includes(did))
    const rewrite = (body: string) => (applies ? body.split(JSON.stringify(pdsUrl)).join(JSON.stringify(replacement)) : body)
    forward(plcUrl, req, res, rewrite).catch(() => req.socket.destroy())
  })
  const url = await listen(server)
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

export type PlcMode = 'pass' | 'unavailable' | 'hang' | 'slow'

export interface PlcSwitch {
  url: string
  /**
   * `pass` forwards to the real directory; `unavailable` answers 503; `hang` accepts the
   * request and never answers (the client's own timeout must end it); `slow` forwards after
   * `slowMs`.
   */
  mode: PlcMode
  slowMs: number
  /** Requests seen, by mode at the time they arrived. */
  seen: Record<PlcMode, number>
  /** Requests still held open by `hang`. */
  readonly hanging: number
  /** How many requests named this DID (any mode): whether the client tried to resolve it. */
  asked(did: string): number
  /** Requests that named this DID while the mode was not `pass`. */
  refused(did: string): number
  close(): Promise<void>
}

/**
 * A PLC directory front whose availability a test switches, for a client whose PLC_URL points
 * here (the PDS keeps talking to the real directory). Requests are forwarded as they are
 * (method, headers that matter, body), answers passed back untouched.
 */
export const startPlcSwitch = async (plcUrl: string): Promise<PlcSwitch> => {
  const held = new Set<http.ServerResponse>()
  const byDid = new Map<string, { all: number; refused: number }>()
  const count = (req: http.IncomingMessage, refused: boolean) => {
    const path = decodeURIComponent(req.url ?? '/')
    const did = /did:[a-z]+:[a-zA-Z0-9._:%-]+/.exec(path)?.[0]
    if (!did) return
    const c = byDid.get(did) ?? { all: 0, refused: 0 }
    c.all++
    if (refused) c.refused++
    byDid.set(did, c)
  }
  const sw: PlcSwitch = {
    url: '',
    mode: 'pass',
    slowMs: 3000,
    seen: { pass: 0, unavailable: 0, hang: 0, slow: 0 },
    get hanging() {
      return held.size
    },
    asked: (did) => byDid.get(did)?.all ?? 0,
    refused: (did) => byDid.get(did)?.refused ?? 0,
    close: async () => {},
  }
  const pass = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const headers: Record<string, string> = {}
    for (const name of ['content-type', 'accept']) {
      const v = req.headers[name]
      if (typeof v === 'string') headers[name] = v
    }
    const upstream = await fetch(new URL(req.url ?? '/', plcUrl), {
      method: req.method,
      headers,
      redirect: 'manual',
      body: chunks.length > 0 && req.method !== 'GET' && req.method !== 'HEAD' ? Buffer.concat(chunks) : undefined,
    })
    const body = Buffer.from(await upstream.arrayBuffer())
    res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/octet-stream' })
    res.end(body)
  }
  const server = http.createServer((req, res) => {
    const mode = sw.mode
    sw.seen[mode]++
    count(req, mode !== 'pass')
    switch (mode) {
      case 'unavailable':
        res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'PLC directory unavailable' }))
        return
      case 'hang':
        // Accepted and read, never answered; released only by the client or by close().
        held.add(res)
        res.once('close', () => held.delete(res))
        req.resume()
        return
      case 'slow':
        setTimeout(() => void pass(req, res).catch(() => req.socket.destroy()), sw.slowMs)
        return
      case 'pass':
        pass(req, res).catch(() => req.socket.destroy())
    }
  })
  // A hung request must not be cut by the server's own timeouts: only the client ends it.
  server.requestTimeout = 0
  server.keepAliveTimeout = 1000
  sw.url = await listen(server)
  sw.close = () =>
    new Promise<void>((resolve) => {
      for (const res of held) res.destroy()
      server.close(() => resolve())
      server.closeAllConnections()
    })
  return sw
}
