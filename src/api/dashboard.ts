import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Moderator } from '../db/audit.ts'
import { inviterVolume, listBlocks, listRejections } from '../db/moderation.ts'
import { backfillProgress } from '../db/backfill.ts'
import { firehoseStatus, getInviteHistory, moderate, searchInvites, type ModerationAction } from './admin.ts'
import type { ApiContext } from './context.ts'
import { XrpcError, forbidden, invalidRequest } from './errors.ts'
import { endpointStatus } from '../db/webhook.ts'
import { errorPage, signInPage } from './dashboard/frame.ts'
import { healthPage } from './dashboard/health.ts'
import { invitePage, searchPage } from './dashboard/invites.ts'
import { rejectionsPage, volumePage } from './dashboard/moderation.ts'
import { NO_HANDLES, type Handles } from './dashboard/handles.ts'

const COOKIE = 'admin_session'
const ACTIONS: Record<string, { done: string }> = {
  takedownInvite: { done: 'Invite taken down: it is hidden from every public query.' },
  restoreInvite: { done: 'Invite restored: the public queries list it again.' },
  blockInviter: { done: 'Inviter blocked: all their invites, present and future, are hidden.' },
  unblockInviter: { done: 'Inviter unblocked: their invites are listed again.' },
}

type Form = Record<string, string | undefined>

const originHost = (origin: string): string | null => {
  try {
    return new URL(origin).host
  } catch {
    return null
  }
}

const cookieValue = (req: FastifyRequest, name: string): string | undefined => {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=')
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

const setSession = (reply: FastifyReply, req: FastifyRequest, value: string, maxAge: number): void => {
  const secure = req.protocol === 'https' ? '; Secure' : ''
  void reply.header('set-cookie', `${COOKIE}=${value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${secure}`)
}

const sendPage = (reply: FastifyReply, status: number, body: string) =>
  reply
    .status(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    // Nothing but inline styles: no scripts, no third-party anything, no framing.
    .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'same-origin')
    .send(body)

// A datetime-local field (no zone) read as UTC, as the form's label says.
const utc = (value: string | undefined): string | undefined => {
  if (value === undefined || value === '') return undefined
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/.test(value) ? `${value}:00.000Z` : value
}

const nonEmpty = (form: Form): Record<string, string> =>
  Object.fromEntries(Object.entries(form).filter((e): e is [string, string] => typeof e[1] === 'string' && e[1].trim() !== ''))

/**
 * The moderators' dashboard: server-rendered pages over the same functions as the admin API,
 * signed in with the admin password into an HttpOnly, SameSite=Strict session cookie.
 */
export const registerDashboard = (app: FastifyInstance, ctx: ApiContext): void => {
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)))
  })

  // Never holds a page up for long: DIDs whose documents are slow to come are shown alone.
  const handlesOf = (dids: string[]): Promise<Handles> => ctx.handles?.of(dids) ?? Promise.resolve(NO_HANDLES)

  /** Runs a page handler for a signed-in moderator; errors become pages, not JSON. */
  const signedIn = (handler: (req: FastifyRequest, reply: FastifyReply, by: Moderator) => Promise<unknown>) =>
    async (req: FastifyRequest, reply: FastifyReply) => {
      const by = ctx.moderators.session(cookieValue(req, COOKIE))
      if (!by) return req.method === 'GET' && req.url === '/admin' ? sendPage(reply, 200, signInPage()) : reply.redirect('/admin', 303)
      try {
        return await handler(req, reply, by)
      } catch (err) {
        if (err instanceof XrpcError) return sendPage(reply, err.status, errorPage(by.actor, err.status, err.message))
        throw err
      }
    }

  app.post('/admin/sign-in', async (req, reply) => {
    const form = (req.body ?? {}) as Form
    try {
      const session = ctx.moderators.signIn(req, form.name ?? '', form.password ?? '')
      setSession(reply, req, session, ctx.moderators.sessionMaxAgeSeconds)
      return reply.redirect('/admin', 303)
    } catch (err) {
      if (!(err instanceof XrpcError)) throw err
      const message =
        err.status === 429
          ? err.message
          : ctx.moderators.passwordConfigured
            ? 'Wrong password.'
            : 'No admin password is configured on this service: set ADMIN_PASSWORD and restart it.'
      return sendPage(reply.headers(err.headers), err.status, signInPage(message))
    }
  })

  app.post('/admin/sign-out', async (req, reply) => {
    setSession(reply, req, '', 0)
    return reply.redirect('/admin', 303)
  })

  app.get('/admin', signedIn(async (req, reply, by) => {
    const raw = req.query as Form
    const form = nonEmpty({ ...raw, since: utc(raw.since), until: utc(raw.until) })
    const [result, status] = await Promise.all([searchInvites(ctx, { limit: '25', ...form }), firehoseStatus(ctx)])
    const next = result.cursor ? `/admin?${new URLSearchParams({ ...form, cursor: result.cursor }).toString()}` : undefined
    const names = await handlesOf(result.invites.flatMap((i) => [i.inviter, i.invitee]))
    return sendPage(reply, 200, searchPage(by.actor, form, { ...result, nextHref: next }, status, names))
  }))

  app.get('/admin/invite', signedIn(async (req, reply, by) => {
    const { uri, done } = req.query as Form
    if (!uri) throw invalidRequest('uri is required')
    const { invite, events } = await getInviteHistory(ctx, uri)
    const notice = done ? ACTIONS[done]?.done : undefined
    const dids = [invite?.inviter, invite?.invitee, ...events.flatMap((e) => [e.subject, e.actorKind === 'service-auth' ? e.actor : undefined])]
    const names = await handlesOf(dids.filter((d): d is string => typeof d === 'string'))
    return sendPage(reply, 200, invitePage(by.actor, uri, invite, events, notice, names))
  }))

  app.post('/admin/action', signedIn(async (req, reply, by) => {
    // SameSite=Strict keeps other sites' forms from carrying the cookie; an Origin that is
    // not ours is refused all the same.
    const origin = req.headers.origin
    if (origin !== undefined && originHost(origin) !== req.headers.host) throw forbidden('cross-origin form refused')
    const form = (req.body ?? {}) as Form
    const action = form.action ?? ''
    if (!(action in ACTIONS)) throw invalidRequest('unknown action')
    const input = { [action.endsWith('Invite') ? 'uri' : 'did']: form.target ?? '', reason: form.reason ?? '' }
    await moderate(ctx, action as ModerationAction, input, by)
    const back = form.back?.startsWith('/admin') ? form.back : '/admin'
    return reply.redirect(`${back}${back.includes('?') ? '&' : '?'}done=${action}#notice`, 303)
  }))

  app.get('/admin/health', signedIn(async (_req, reply, by) => {
    const [status, backfill, webhooks] = await Promise.all([
      firehoseStatus(ctx),
      backfillProgress(ctx.pool),
      endpointStatus(ctx.pool, ctx.push?.webhookUrls ?? []),
    ])
    const subs = ctx.push?.subscriptions()
    const push = ctx.push && { subscribers: subs?.connections ?? 0, slowConsumersCut: subs?.slowConsumersCut ?? 0, listening: ctx.push.fanout().listening, webhooks }
    return sendPage(reply, 200, healthPage(by.actor, status, backfill, push))
  }))

  app.get('/admin/rejections', signedIn(async (req, reply, by) => {
    const form = nonEmpty(req.query as Form)
    const before = form.cursor && /^\d{1,15}$/.test(form.cursor) ? Number(form.cursor) : undefined
    const page = await listRejections(ctx.pool, { repo: form.repo, reason: form.reason, limit: 50, before })
    const next = page.next ? `/admin/rejections?${new URLSearchParams({ ...form, cursor: String(page.next) }).toString()}` : undefined
    return sendPage(reply, 200, rejectionsPage(by.actor, form, page.rows, next))
  }))

  app.get('/admin/volume', signedIn(async (req, reply, by) => {
    const { spamPerHour: perHour, spamPerDay: perDay } = ctx.admin
    const [rows, blocks] = await Promise.all([inviterVolume(ctx.pool, { limit: 100, perHour, perDay }), listBlocks(ctx.pool, 100)])
    const names = await handlesOf([...rows.map((r) => r.inviter), ...blocks.map((b) => b.did)])
    const { done } = req.query as Form
    return sendPage(reply, 200, volumePage(by.actor, rows, { perHour, perDay }, blocks, names, done ? ACTIONS[done]?.done : undefined))
  }))
}
