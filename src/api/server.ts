import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import type { Logger } from '../lib/log.ts'
import type { Metrics } from './metrics.ts'
import type { TrustProxy } from '../config.ts'
import type { ApiContext } from './context.ts'
import { isDatabaseUnavailable, XrpcError } from './errors.ts'
import { registerHealth } from './health.ts'
import { registerListCollaborators } from './collaborators.ts'
import { registerListInvites } from './invites.ts'
import { registerAdmin } from './admin.ts'
import { registerDashboard } from './dashboard.ts'
import { registerSync } from './sync.ts'
import { SUBSCRIBE_INVITES } from '../atproto/lexicons.ts'

export interface ApiLimits {
  /** Requests per client address per window; 0 turns the limit off. */
  rateLimitMax: number
  rateLimitWindowMs: number
  /** Time allowed for a whole request to arrive. */
  requestTimeoutMs: number
  /** Largest request line plus headers. */
  maxHeaderBytes: number
  /** Take the client address from X-Forwarded-For (only behind a proxy that sets it). */
  trustProxy: TrustProxy
  /** API queries running longer are cancelled by Postgres (the pool sets it); named in the 503. */
  statementTimeoutMs: number
}

export interface ApiOptions {
  limits: ApiLimits
  metrics?: Metrics | undefined
}

const UNLIMITED = new Set(['/xrpc/_health', '/metrics'])

const xrpcError = (error: string, message: string) => ({ error, message })

/**
 * Requests that Node's HTTP parser refuses never reach Fastify (oversized headers, slow or
 * garbled requests): they are answered here, XRPC-shaped like every other error.
 */
const answerClientError = (err: NodeJS.ErrnoException, socket: Socket): void => {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const [status, error, message] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'RequestTimeout', 'the request did not arrive in time']
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'InvalidRequest', 'the request line and headers are too large']
        : [400, 'InvalidRequest', 'malformed HTTP request']
  const body = JSON.stringify(xrpcError(error, message))
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    )
  }
  socket.destroy()
}

const trustHops = (hops: number) => (_address: string, hop: number): boolean => hop < hops

export const createApi = (ctx: ApiContext, log: Logger, { limits, metrics }: ApiOptions): FastifyInstance => {
  const app = Fastify({
    loggerInstance: log.child({ component: 'api' }) as FastifyBaseLogger,
    // Per-request log lines cost more than the queries at the request rates we serve.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 64 * 1024,
    requestTimeout: limits.requestTimeoutMs,
    // A hop count becomes "the nearest n hops" (Fastify's own reading of a number; its types
    // take only the function form). Never `true`: a client could name any address.
    trustProxy: typeof limits.trustProxy === 'number' ? trustHops(limits.trustProxy) : limits.trustProxy,
    // Node checks request timeouts on an interval (30 s by default): a short timeout needs a shorter one.
    http: {
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: Math.min(30_000, Math.max(50, Math.floor(limits.requestTimeoutMs / 4))),
    },
    clientErrorHandler: answerClientError,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 500 },
    // A URL that cannot be decoded (e.g. a lone %) fails before routing.
    frameworkErrors: (err, _req, reply) => {
      void (reply as FastifyReply).status(400).send(xrpcError('InvalidRequest', err.message))
    },
  })
  // The XRPC methods served, by path, for the 405 of a method asked with the wrong HTTP method.
  // Fastify's hasRoute reads its argument as a route pattern, so a request path with `*` or
  // `:` in it would be a (bad) pattern: it threw, and the request got a 500.
  const xrpcMethods = new Map<string, Set<string>>()
  app.addHook('onRoute', (route) => {
    if (!route.url.startsWith('/xrpc/')) return
    const methods = xrpcMethods.get(route.url) ?? new Set<string>()
    for (const m of [route.method].flat()) methods.add(m)
    xrpcMethods.set(route.url, methods)
  })
  if (metrics) {
    app.addHook('onResponse', async (req, reply) => {
      // Unmatched paths share one label: a scanner must not grow the label set.
      metrics.observeRequest(req.routeOptions.url ?? 'unmatched', req.method, reply.statusCode, reply.elapsedTime / 1000)
    })
  }
  if (limits.rateLimitMax > 0) {
    void app.register(rateLimit, {
      max: limits.rateLimitMax,
      timeWindow: limits.rateLimitWindowMs,
      // Orchestrators and scrapers poll on a schedule: never refused for their rate.
      allowList: (req) => UNLIMITED.has(req.routeOptions.url ?? ''),
      errorResponseBuilder: (_req, res) =>
        new XrpcError(429, 'RateLimitExceeded', `at most ${res.max} requests per ${limits.rateLimitWindowMs / 1000} s; retry in ${res.after}`),
    })
  }
  // Registered after the rate limiter so that its hooks reach every route.
  void app.register(async (routes) => {
    registerHealth(routes, ctx)
    registerListInvites(routes, ctx)
    registerListCollaborators(routes, ctx)
    registerAdmin(routes, ctx)
    registerDashboard(routes, ctx)
    registerSync(routes, ctx)
    // The subscription is served on upgrade (subscription.ts); a plain GET is told so.
    routes.get(`/xrpc/${SUBSCRIBE_INVITES}`, async () => {
      throw new XrpcError(400, 'InvalidRequest', `${SUBSCRIBE_INVITES} is a subscription: connect with a WebSocket`)
    })
    if (metrics) {
      routes.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.scrape()))
    }
  })
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0] ?? ''
    // XRPC convention (as in @atproto/xrpc-server): a method this service does not have is 501;
    // one it has, asked with the wrong HTTP method, says which one it takes (405 with `Allow`).
    if (path.startsWith('/xrpc/')) {
      const served = xrpcMethods.get(path.replace(/\/+$/, ''))
      const takes = ['GET', 'POST'].find((m) => m !== req.method && served?.has(m))
      if (takes) {
        const kind = takes === 'GET' ? 'a query' : 'a procedure'
        void reply
          .status(405)
          .header('allow', takes === 'GET' ? 'GET, HEAD' : 'POST')
          .send(xrpcError('InvalidRequest', `${path.slice(6)} is ${kind}: use ${takes}, not ${req.method}`))
        return
      }
      void reply.status(501).send(xrpcError('MethodNotImplemented', `method not implemented: ${path.slice(6)}`))
      return
    }
    void reply.status(404).send(xrpcError('NotFound', `no such path: ${path}`))
  })
  app.setErrorHandler((err, req, reply) => {
    if (err instanceof XrpcError) {
      return reply.status(err.status).headers(err.headers).send(xrpcError(err.error, err.message))
    }
    if (isDatabaseUnavailable(err)) {
      return reply.status(503).send(xrpcError('ServiceUnavailable', 'the database is unavailable'))
    }
    if ((err as { code?: unknown }).code === '57014') {
      // Cancelled by the API's statement_timeout: the database is busy, not the request wrong.
      return reply
        .status(503)
        .header('retry-after', '1')
        .send(xrpcError('ServiceUnavailable', `the query took longer than ${limits.statementTimeoutMs} ms; try again`))
    }
    const status = (err as { statusCode?: number }).statusCode
    if (typeof status === 'number' && status >= 400 && status < 500) {
      return reply.status(400).send(xrpcError('InvalidRequest', (err as Error).message))
    }
    req.log.error({ err }, 'request failed')
    return reply.status(500).send(xrpcError('InternalServerError', 'internal error'))
  })
  return app
}
