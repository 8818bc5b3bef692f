import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Logger } from '../log.ts'
import type { ApiContext } from './context.ts'
import { XrpcError } from './errors.ts'
import { registerHealth } from './health.ts'
import { registerListCollaborators } from './collaborators.ts'
import { registerListInvites } from './invites.ts'
import { registerAdmin } from './admin.ts'
import { registerDashboard } from './dashboard.ts'

// Errors that mean "the database is not there right now", not "the request was wrong".
const isDatabaseUnavailable = (err: unknown): boolean => {
  const code = (err as { code?: unknown }).code
  return (
    (typeof code === 'string' && (/^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|57P0[1-3]|08\d{3})$/.test(code))) ||
    /Connection terminated|timeout exceeded when trying to connect/i.test((err as Error).message ?? '')
  )
}

export const createApi = (ctx: ApiContext, log: Logger): FastifyInstance => {
  const app = Fastify({
    loggerInstance: log.child({ component: 'api' }) as FastifyBaseLogger,
    // Per-request log lines cost more than the queries at the request rates we serve.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 64 * 1024,
    requestTimeout: 15_000,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 500 },
  })
  registerHealth(app, ctx)
  registerListInvites(app, ctx)
  registerListCollaborators(app, ctx)
  registerAdmin(app, ctx)
  registerDashboard(app, ctx)
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({ error: 'NotFound', message: `no such method: ${req.url.split('?')[0]}` })
  })
  app.setErrorHandler((err, req, reply) => {
    if (err instanceof XrpcError) {
      return reply.status(err.status).headers(err.headers).send({ error: err.error, message: err.message })
    }
    if (isDatabaseUnavailable(err)) {
      return reply.status(503).send({ error: 'ServiceUnavailable', message: 'the database is unavailable' })
    }
    const status = (err as { statusCode?: number }).statusCode
    if (typeof status === 'number' && status >= 400 && status < 500) {
      return reply.status(400).send({ error: 'InvalidRequest', message: (err as Error).message })
    }
    req.log.error({ err }, 'request failed')
    return reply.status(500).send({ error: 'InternalServerError', message: 'internal error' })
  })
  return app
}
