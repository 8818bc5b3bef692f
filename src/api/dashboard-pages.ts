import type { BlockRow, RejectionRow, VolumeRow } from '../db/moderation.ts'
import type { adminInviteView, auditEventView, firehoseStatus } from './admin.ts'
import { Html, html } from './html.ts'

type InviteView = ReturnType<typeof adminInviteView>
type EventView = ReturnType<typeof auditEventView>
type Status = Awaited<ReturnType<typeof firehoseStatus>>

const STYLE = `
:root { color-scheme: light; --ink: #1d2330; --muted: #5b6474; --line: #d5dae3; --bg: #f5f7fa; --accent: #1f5fbf;
  --ok: #1e7a3c; --bad: #b3261e; --warn: #8a5a00; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: var(--bg); }
a { color: var(--accent); }
:focus-visible { outline: 3px solid #f0b400; outline-offset: 2px; }
.skip { position: absolute; left: -999px; } .skip:focus { left: 8px; top: 8px; background: #fff; padding: 6px; z-index: 9; }
header { background: #17233b; color: #fff; padding: 0 24px; display: flex; align-items: center; gap: 24px; min-height: 52px; }
header h1 { font-size: 17px; margin: 0; font-weight: 600; }
header nav { display: flex; gap: 4px; flex: 1; }
header nav a { color: #dfe7f5; text-decoration: none; padding: 6px 10px; border-radius: 6px; }
header nav a[aria-current] { background: #2f4370; color: #fff; }
header form { margin: 0; } header .who { color: #b8c4da; font-size: 13px; }
main { padding: 20px 24px 40px; max-width: 1320px; margin: 0 auto; }
h2 { font-size: 18px; margin: 0 0 12px; } h3 { font-size: 15px; margin: 0 0 8px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 14px 18px; margin-bottom: 14px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 8px 18px; }
.metric { font-size: 12.5px; color: var(--muted); } .metric b { display: block; font-size: 16px; color: var(--ink); font-weight: 600; }
.metric .mono { font-size: 12px; font-weight: 400; }
label { display: block; font-size: 13px; font-weight: 600; margin-bottom: 3px; }
input, select, textarea { font: inherit; padding: 6px 8px; border: 1px solid #9aa4b5; border-radius: 6px; width: 100%; background: #fff; }
textarea { min-height: 64px; }
.fields { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 10px 14px; align-items: end; }
button { font: inherit; font-weight: 600; padding: 7px 14px; border-radius: 6px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
button.secondary { background: #fff; color: var(--accent); }
button.danger { background: var(--bad); border-color: var(--bad); }
table { width: 100%; border-collapse: collapse; font-size: 13.5px; }
th, td { text-align: left; padding: 7px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; text-transform: uppercase; letter-spacing: .03em; color: var(--muted); }
.mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12.5px; word-break: break-all; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; background: #e7ebf2; white-space: nowrap; }
.badge.ok { background: #dcf1e3; color: var(--ok); } .badge.bad { background: #fbe2df; color: var(--bad); } .badge.warn { background: #fbefd5; color: var(--warn); }
.notice { border-left: 5px solid var(--ok); background: #eef8f1; padding: 10px 14px; border-radius: 6px; margin-bottom: 16px; }
.notice.error { border-color: var(--bad); background: #fdeceb; }
.actions { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; }
dl { display: grid; grid-template-columns: 170px 1fr; gap: 6px 14px; margin: 0; } dt { color: var(--muted); font-size: 13px; } dd { margin: 0; }
.charts { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; margin-top: 12px; }
.chart figcaption { font-size: 13px; margin-bottom: 4px; }
.chart svg { display: block; width: 100%; background: #fafbfd; border: 1px solid var(--line); border-radius: 4px; }
.axis { display: flex; justify-content: space-between; font-size: 11px; }
.muted { color: var(--muted); } .row { display: flex; gap: 10px; align-items: center; flex-wrap: wrap; }
.signin { max-width: 380px; margin: 80px auto; } .signin .card { padding: 24px; } .signin p { margin-top: 0; }
.signin label { margin-top: 12px; } .signin button { margin-top: 16px; width: 100%; }
pre { white-space: pre-wrap; word-break: break-all; margin: 0; font-size: 12px; max-height: 120px; overflow: auto; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
`

export type Section = 'search' | 'rejections' | 'volume' | 'health'

const NAV: [Section, string, string][] = [
  ['search', 'Invites', '/admin'],
  ['rejections', 'Rejections', '/admin/rejections'],
  ['volume', 'Inviter volume', '/admin/volume'],
  ['health', 'Firehose health', '/admin/health'],
]

export const page = (title: string, body: Html, chrome?: { section: Section | null; moderator: string }): string =>
  html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Invite moderation</title><style>${new Html(STYLE)}</style></head>
<body>
${chrome
  ? html`<a class="skip" href="#main">Skip to content</a>
<header><h1>Invite moderation</h1>
<nav aria-label="Sections">${NAV.map(
      ([key, label, href]) => html`<a href="${href}"${chrome.section === key ? html` aria-current="page"` : ''}>${label}</a>`,
    )}</nav>
<span class="who">Signed in as ${chrome.moderator}</span>
<form method="post" action="/admin/sign-out"><button class="secondary" type="submit">Sign out</button></form></header>`
  : ''}
<main id="main">${body}</main></body></html>`.value

export const signInPage = (message?: string): string =>
  page(
    'Sign in',
    html`<div class="signin"><div class="card">
<h2>Moderator sign-in</h2>
<p class="muted">Chive collaboration invites: audit, takedowns and firehose health.</p>
${message ? html`<div class="notice error" role="alert">${message}</div>` : ''}
<form method="post" action="/admin/sign-in">
<label for="name">Your name <span class="muted">(recorded with your actions)</span></label>
<input id="name" name="name" autocomplete="username" required maxlength="100">
<label for="password">Admin password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form></div></div>`,
  )

const time = (iso: string | undefined): Html | string =>
  iso ? html`<time datetime="${iso}">${iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}</time>` : '—'

const lines = (parts: (Html | string | null | undefined)[]): Html[] =>
  parts.filter((p) => p !== undefined && p !== null && p !== '').map((p, i) => (i === 0 ? html`${p}` : html`<br>${p}`))

const short = (uri: string): string => uri.split('/').pop() ?? uri

const stateBadge = (state: string): Html =>
  html`<span class="badge ${state === 'accepted' ? 'ok' : state === 'rejected' || state === 'expired' ? 'warn' : ''}">${state}</span>`

const verificationBadge = (v: string | undefined): Html =>
  html`<span class="badge ${v === 'verified' ? 'ok' : v === 'pending' ? '' : 'bad'}">${v ?? '—'}</span>`

const visibility = (i: InviteView): Html => {
  if (i.takedown) return html`<span class="badge bad">taken down</span>`
  if (i.inviterBlock) return html`<span class="badge bad">inviter blocked</span>`
  if (i.inviterStatus) return html`<span class="badge warn">inviter ${i.inviterStatus}</span>`
  return i.served ? html`<span class="badge ok">served</span>` : html`<span class="badge">not served</span>`
}

export interface SearchForm {
  inviter?: string | undefined
  invitee?: string | undefined
  subjectUri?: string | undefined
  state?: string | undefined
  verification?: string | undefined
  since?: string | undefined
  until?: string | undefined
}

const select = (id: string, label: string, options: string[], value: string | undefined): Html =>
  html`<div><label for="${id}">${label}</label><select id="${id}" name="${id}">${options.map(
    (o) => html`<option value="${o === 'any' ? '' : o}"${(value ?? '') === (o === 'any' ? '' : o) ? html` selected` : ''}>${o}</option>`,
  )}</select></div>`

const text = (id: string, label: string, value: string | undefined, placeholder = ''): Html =>
  html`<div><label for="${id}">${label}</label><input id="${id}" name="${id}" value="${value ?? ''}" placeholder="${placeholder}"></div>`

const localTime = (iso: string | undefined): string => (iso ? iso.slice(0, 16) : '')

export const searchPage = (
  moderator: string,
  form: SearchForm,
  result: { invites: InviteView[]; total: number; cursor?: string | undefined; nextHref?: string | undefined },
  status: Status,
): string =>
  page(
    'Invites',
    html`${healthPanel(status, false)}
<section class="card" aria-labelledby="search-h"><h2 id="search-h">Search invites</h2>
<form method="get" action="/admin" role="search">
<div class="fields">
${text('inviter', 'Inviter DID', form.inviter, 'did:plc:…')}
${text('invitee', 'Invitee DID', form.invitee, 'did:plc:…')}
${text('subjectUri', 'Subject URI', form.subjectUri, 'at://…')}
${select('state', 'State', ['any', 'pending', 'accepted', 'rejected', 'expired'], form.state)}
${select('verification', 'Verification', ['any', 'verified', 'pending', 'subject-missing', 'cid-mismatch', 'not-chive-record', 'subject-deleted'], form.verification)}
<div><label for="since">Listed from (UTC)</label><input id="since" name="since" type="datetime-local" value="${localTime(form.since)}"></div>
<div><label for="until">Listed before (UTC)</label><input id="until" name="until" type="datetime-local" value="${localTime(form.until)}"></div>
<div class="row"><button type="submit">Search</button><a href="/admin">Clear</a></div>
</div></form></section>
<section class="card" aria-labelledby="results-h"><h2 id="results-h">${result.total} ${result.total === 1 ? 'invite' : 'invites'}</h2>
${result.invites.length === 0
  ? html`<p class="muted">No invite matches.</p>`
  : html`<table><thead><tr><th scope="col">Listed</th><th scope="col">Inviter</th><th scope="col">Invitee</th><th scope="col">Subject</th>
<th scope="col">State</th><th scope="col">Verification</th><th scope="col">Visibility</th><th scope="col"><span class="sr-only">Open</span></th></tr></thead><tbody>
${result.invites.map(
  (i) => html`<tr><td>${time(i.createdAt)}</td><td class="mono">${i.inviter}</td><td class="mono">${i.invitee}</td>
<td class="mono">${short(i.subjectUri)}<br><span class="muted">${i.subjectCollection}</span></td>
<td>${stateBadge(i.state)}</td><td>${verificationBadge(i.verification)}</td><td>${visibility(i)}</td>
<td><a href="/admin/invite?uri=${encodeURIComponent(i.uri)}">History<span class="sr-only"> of invite ${short(i.uri)}</span></a></td></tr>`,
)}</tbody></table>`}
${result.nextHref ? html`<p><a href="${result.nextHref}">Next page</a></p>` : ''}
</section>`,
    { section: 'search', moderator },
  )

const EVENT_LABEL: Record<string, string> = {
  create: 'created',
  update: 'updated',
  delete: 'deleted by author',
  rejection: 'rejected',
  verification: 'verification',
  account: 'account status',
  expiry: 'expired',
  takedown: 'taken down',
  restore: 'restored',
  block: 'inviter blocked',
  unblock: 'inviter unblocked',
}

const eventClass = (e: string): string =>
  ['takedown', 'block', 'rejection', 'delete'].includes(e) ? 'bad' : ['restore', 'unblock', 'create'].includes(e) ? 'ok' : ''

const reasonField = (id: string): Html =>
  html`<label for="${id}">Reason <span class="muted">(required, kept in the audit trail)</span></label>
<textarea id="${id}" name="reason" required maxlength="2000"></textarea>`

const actionForm = (action: string, target: string, back: string, id: string, title: string, button: string, danger: boolean): Html =>
  html`<form method="post" action="/admin/action" class="card">
<h3>${title}</h3>
<input type="hidden" name="action" value="${action}"><input type="hidden" name="target" value="${target}">
<input type="hidden" name="back" value="${back}">
${reasonField(id)}
<p><button type="submit" class="${danger ? 'danger' : ''}">${button}</button></p></form>`

export const invitePage = (
  moderator: string,
  uri: string,
  invite: InviteView | undefined,
  events: EventView[],
  notice: string | undefined,
): string => {
  const inviter = invite?.inviter ?? events.find((e) => e.subject === uri)?.repo
  const back = `/admin/invite?uri=${encodeURIComponent(uri)}`
  return page(
    'Invite history',
    html`${notice ? html`<div class="notice" role="status" id="notice">${notice}</div>` : ''}
<section class="card" aria-labelledby="invite-h"><h2 id="invite-h">Invite <span class="mono">${uri}</span></h2>
${invite
  ? html`<dl>
<dt>Visibility</dt><dd>${visibility(invite)}${invite.takedown ? html` <span class="muted">— ${invite.takedown.reason} (by ${invite.takedown.actor}, ${time(invite.takedown.at)})</span>` : ''}${invite.inviterBlock ? html` <span class="muted">— inviter blocked: ${invite.inviterBlock.reason} (by ${invite.inviterBlock.actor})</span>` : ''}</dd>
<dt>State</dt><dd>${stateBadge(invite.state)}</dd>
<dt>Verification</dt><dd>${verificationBadge(invite.verification)} <span class="muted">${invite.verificationReason ?? ''}</span></dd>
<dt>Inviter</dt><dd class="mono"><a href="/admin?inviter=${encodeURIComponent(invite.inviter)}">${invite.inviter}</a></dd>
<dt>Invitee</dt><dd class="mono"><a href="/admin?invitee=${encodeURIComponent(invite.invitee)}">${invite.invitee}</a></dd>
<dt>Subject</dt><dd class="mono">${invite.subjectUri}</dd>
<dt>Role</dt><dd>${invite.role ?? '—'}</dd>
<dt>Message</dt><dd>${invite.message ?? html`<span class="muted">none</span>`}</dd>
<dt>Created / indexed</dt><dd>${time(invite.createdAt)} / ${time(invite.indexedAt)}</dd>
${invite.expiresAt ? html`<dt>Expires</dt><dd>${time(invite.expiresAt)}</dd>` : ''}
${invite.deletedAt ? html`<dt>Deleted by author</dt><dd>${time(invite.deletedAt)}</dd>` : ''}
${invite.acceptanceUri ? html`<dt>Acceptance</dt><dd class="mono">${invite.acceptanceUri} (${time(invite.acceptedAt)})</dd>` : ''}
</dl>`
  : html`<p class="muted">The service no longer holds this record (deleted long ago, rejected, or its author's account was deleted); its history remains.</p>`}
</section>
<section aria-labelledby="actions-h"><h2 id="actions-h" class="sr-only">Actions</h2><div class="actions">
${invite
  ? invite.takedown
    ? actionForm('restoreInvite', uri, back, 'restore-reason', 'Restore this invite', 'Restore invite', false)
    : actionForm('takedownInvite', uri, back, 'takedown-reason', 'Take down this invite', 'Take down invite', true)
  : html`<div></div>`}
${inviter
  ? invite?.inviterBlock
    ? actionForm('unblockInviter', inviter, back, 'unblock-reason', 'Unblock the inviter', 'Unblock inviter', false)
    : actionForm('blockInviter', inviter, back, 'block-reason', 'Block the inviter (all their invites, present and future)', 'Block inviter', true)
  : ''}
</div></section>
<section class="card" aria-labelledby="history-h"><h2 id="history-h">History</h2>
<table><thead><tr><th scope="col">When (UTC)</th><th scope="col">Event</th><th scope="col">Record</th><th scope="col">Reason / detail</th>
<th scope="col">Relay seq</th><th scope="col">Repo rev</th><th scope="col">By</th></tr></thead><tbody>
${events.map(
  (e) => html`<tr><td>${time(e.at)}</td><td><span class="badge ${eventClass(e.event)}">${EVENT_LABEL[e.event] ?? e.event}</span></td>
<td class="mono">${e.subject === uri ? 'this invite' : e.subject.startsWith('did:') ? e.subject : html`acceptance ${short(e.subject)}`}</td>
<td>${lines([e.reason, e.detail && html`<span class="muted">${e.detail}</span>`, e.message && `“${e.message}”`])}</td>
<td class="mono">${e.seq ?? '—'}</td><td class="mono">${e.rev ?? '—'}</td><td>${e.actor ? html`${e.actor} <span class="muted">(${e.actorKind})</span>` : '—'}</td></tr>`,
)}</tbody></table></section>`,
    { section: null, moderator },
  )
}

/** Per-minute bars over the last hour, with the latest and peak values in words. */
const minuteBars = (title: string, unit: string, points: { minute: string; value: number | undefined }[], height: number): Html => {
  const values = points.map((p) => p.value).filter((v): v is number => v !== undefined)
  const peak = values.length ? Math.max(...values) : undefined
  const latest = values[values.length - 1]
  const scale = Math.max(1, peak ?? 0)
  const now = Date.now()
  const bars = points.flatMap((p) => {
    if (p.value === undefined) return []
    const age = Math.floor((now - Date.parse(p.minute)) / 60_000)
    const h = Math.max(p.value > 0 ? 2 : 0.5, (p.value / scale) * (height - 4))
    return [html`<rect x="${(59 - age) * 10 + 1}" y="${(height - h).toFixed(1)}" width="8" height="${h.toFixed(1)}" fill="#1f5fbf"><title>${p.minute.slice(11, 16)}Z: ${p.value}${unit}</title></rect>`]
  })
  const words = (v: number | undefined) => (v === undefined ? '—' : `${v}${unit}`)
  return html`<figure class="chart" style="margin:0">
<figcaption><b>${title}</b> <span class="muted">latest ${words(latest)}, peak ${words(peak)}</span></figcaption>
<svg viewBox="0 0 600 ${height}" preserveAspectRatio="none" style="height:${height}px" role="img"
 aria-label="${title} over the last hour: latest ${words(latest)}, peak ${words(peak)}">
<line x1="0" y1="${height - 0.5}" x2="600" y2="${height - 0.5}" stroke="#c3cad6"/>${bars}</svg>
<div class="axis muted"><span>60 min ago</span><span>now</span></div></figure>`
}

export const healthPanel = (s: Status, full: boolean): Html => {
  const problems = Object.entries((s.problems ?? {}) as Record<string, { count?: number; message?: string; at?: string }>)
  const metric = (label: string, value: Html | string | number) => html`<div class="metric">${label}<b>${value}</b></div>`
  return html`<section class="card health" aria-labelledby="health-h">
<div class="row"><h2 id="health-h" style="margin:0">Firehose health</h2>
<span class="badge ${s.connected ? 'ok' : 'bad'}" id="connection">${s.connected ? 'Connected' : 'Not connected'}</span>
${full ? '' : html`<a href="/admin/health" style="margin-left:auto">All firehose details</a>`}</div>
<div class="grid" style="margin-top:10px">
${metric('Relay', html`<span class="mono">${s.relay}</span>`)}
${metric('Cursor (seq)', s.cursor ?? '—')}
${metric('Lag', s.lagSeconds === undefined ? '—' : `${s.lagSeconds} s`)}
${metric('Status age', s.statusAgeSeconds === undefined ? '—' : `${s.statusAgeSeconds} s`)}
${metric('Reconnects', s.reconnects ?? 0)}
${metric('Malformed / rejected', `${s.errors.malformed} / ${s.errors.rejected}`)}
${metric('Relay problems', s.errors.problems)}
${metric('Verification queue', s.verificationQueue.oldestAgeSeconds === undefined ? s.verificationQueue.depth : `${s.verificationQueue.depth} (oldest ${s.verificationQueue.oldestAgeSeconds} s)`)}
</div>
<div class="charts">
${minuteBars('Events per minute', '', s.history.map((p) => ({ minute: p.minute, value: p.events })), full ? 90 : 40)}
${minuteBars('Lag', ' s', s.history.map((p) => ({ minute: p.minute, value: p.lagSeconds })), full ? 90 : 40)}
</div>
${full
  ? html`<h3 style="margin-top:16px">Details</h3><dl>
<dt>Cursor committed</dt><dd>${time(s.cursorUpdatedAt)}</dd>
<dt>Last relay event</dt><dd>${time(s.lastEventTime)}</dd>
<dt>Last disconnect</dt><dd>${s.lastDisconnectReason ?? '—'}</dd>
<dt>Frames / indexed</dt><dd>${s.framesReceived ?? 0} / ${s.eventsIndexed ?? 0}</dd>
<dt>Malformed by reason</dt><dd class="mono">${JSON.stringify(s.malformed)}</dd>
<dt>Rejected by reason</dt><dd class="mono">${JSON.stringify(s.rejected)}</dd>
<dt>Relay problems</dt><dd>${problems.length === 0 ? 'none' : problems.map(([name, p]) => html`<div><b>${name}</b> ×${p.count ?? 1} ${p.message ?? ''} (${time(p.at)})</div>`)}</dd>
<dt>Verification</dt><dd class="mono">${JSON.stringify(s.verification ?? {})}</dd>
<dt>Backfill</dt><dd class="muted">not implemented: no backfill queue</dd>
</dl>`
  : ''}
</section>`
}

export const healthPage = (moderator: string, status: Status): string =>
  page('Firehose health', healthPanel(status, true), { section: 'health', moderator })

export const rejectionsPage = (
  moderator: string,
  form: { repo?: string | undefined; reason?: string | undefined },
  rows: RejectionRow[],
  nextHref: string | undefined,
): string =>
  page(
    'Rejections',
    html`<section class="card" aria-labelledby="rej-h"><h2 id="rej-h">Rejection log</h2>
<p class="muted">Records that failed validation or verification, newest first, as received.</p>
<form method="get" action="/admin/rejections" role="search"><div class="fields">
${text('repo', 'Repo DID', form.repo, 'did:plc:…')}${text('reason', 'Reason', form.reason, 'self-invite')}
<div class="row"><button type="submit">Filter</button><a href="/admin/rejections">Clear</a></div></div></form></section>
<section class="card"><table><thead><tr><th scope="col">When (UTC)</th><th scope="col">Reason</th><th scope="col">Record</th><th scope="col">Detail</th><th scope="col">As received</th></tr></thead><tbody>
${rows.map(
  (r) => html`<tr><td>${time(r.rejectedAt.toISOString())}</td><td><span class="badge bad">${r.reason}</span></td>
<td class="mono">${r.uri ?? '—'}${r.seq !== null ? html`<br><span class="muted">seq ${r.seq}</span>` : ''}</td><td>${r.detail ?? ''}</td>
<td><pre>${r.record === null ? '—' : JSON.stringify(r.record, null, 1)}</pre></td></tr>`,
)}</tbody></table>
${rows.length === 0 ? html`<p class="muted">No rejection matches.</p>` : ''}
${nextHref ? html`<p><a href="${nextHref}">Next page</a></p>` : ''}</section>`,
    { section: 'rejections', moderator },
  )

export const volumePage = (moderator: string, rows: VolumeRow[], thresholds: { perHour: number; perDay: number }, blocks: BlockRow[]): string =>
  page(
    'Inviter volume',
    html`<section class="card" aria-labelledby="vol-h"><h2 id="vol-h">Invites per inviter</h2>
<p class="muted">Invites created in the last hour and day, busiest first. Flagged at ${thresholds.perHour} in one hour or ${thresholds.perDay} in a day.</p>
<table><thead><tr><th scope="col">Inviter</th><th scope="col">Last hour</th><th scope="col">Peak hour</th><th scope="col">Last day</th><th scope="col">Flag</th><th scope="col"><span class="sr-only">Open</span></th></tr></thead><tbody>
${rows.map(
  (r) => html`<tr><td class="mono">${r.inviter}</td><td>${r.lastHour}</td><td>${r.peakHour}</td><td>${r.lastDay}</td>
<td>${r.blocked ? html`<span class="badge bad">blocked</span>` : r.likelySpam ? html`<span class="badge warn">likely spam</span>` : ''}</td>
<td><a href="/admin?inviter=${encodeURIComponent(r.inviter)}">Invites<span class="sr-only"> of ${r.inviter}</span></a></td></tr>`,
)}</tbody></table>${rows.length === 0 ? html`<p class="muted">No invites in the last day.</p>` : ''}</section>
<section class="card" aria-labelledby="blocks-h"><h2 id="blocks-h">Blocked inviters</h2>
${blocks.length === 0
  ? html`<p class="muted">None.</p>`
  : html`<table><thead><tr><th scope="col">Inviter</th><th scope="col">Reason</th><th scope="col">By</th><th scope="col">Since</th></tr></thead><tbody>
${blocks.map((b) => html`<tr><td class="mono"><a href="/admin?inviter=${encodeURIComponent(b.did)}">${b.did}</a></td><td>${b.reason}</td><td>${b.actor}</td><td>${time(b.at.toISOString())}</td></tr>`)}
</tbody></table>`}</section>`,
    { section: 'volume', moderator },
  )

export const errorPage = (moderator: string | null, status: number, message: string): string =>
  page(
    'Error',
    html`<div class="notice error" role="alert"><b>${status}</b> ${message}</div><p><a href="/admin">Back to the dashboard</a></p>`,
    moderator ? { section: null, moderator } : undefined,
  )
