import http from 'node:http'
import type { AddressInfo } from 'node:net'

export type ProxyMode = 'up' | 'down' | 'unavailable' | 'rate-limited'

export interface FaultProxy {
  url: string
  mode: ProxyMode
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
  const proxy: FaultProxy = { url: '', mode: 'up', seen: { up: 0, down: 0, unavailable: 0, 'rate-limited': 0 }, close: async () => {} }
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
        res.writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' })
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
