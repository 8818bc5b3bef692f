import type { BlockRow, RejectionRow, VolumeRow } from '../db/moderation.ts'
import type { adminInviteView, auditEventView, firehoseStatus } from './admin.ts'
import type { BackfillProgress } from '../db/backfill.ts'
import type { EndpointStatus } from '../db/webhook.ts'
import type { VerifierStatus } from '../db/verification.ts'
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
.chart svg { display: block; width: 100%; height: auto; background: #fafbfd; border: 1px solid var(--line); border-radius: 4px; }
.chart .latest { color: var(--accent); }
.count-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(220px, 1fr)); gap: 12px 18px; }
.counts h4 { font-size: 13px; margin: 0 0 4px; color: var(--muted); font-weight: 600; }
.counts dl { grid-template-columns: 1fr auto; gap: 2px 12px; } .counts dt { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12.5px; color: var(--ink); }
.counts dd { text-align: right; font-weight: 600; font-variant-numeric: tabular-nums; } .counts p { margin: 0; font-size: 13px; }
progress { width: 80px; vertical-align: middle; }
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

/** The smallest 1, 2 or 5 times a power of ten at or above `v`: round gridline values. */
const niceCeil = (v: number): number => {
  if (v <= 1) return 1
  const power = 10 ** Math.floor(Math.log10(v))
  return ([1, 2, 5, 10].find((m) => m * power >= v) ?? 10) * power
}

const compact = (v: number): string =>
  v >= 1_000_000 ? `${+(v / 1_000_000).toFixed(1)}M` : v >= 10_000 ? `${Math.round(v / 1000)}k` : v >= 1000 ? `${+(v / 1000).toFixed(1)}k` : String(v)

/**
 * One value per minute over the last hour, as server-rendered SVG (the page loads no script and
 * nothing from elsewhere): labelled gridlines, a time axis, bars (counts) or a line (levels),
 * the latest value marked, and the latest and peak values in words for screen readers.
 */
const minuteChart = (
  title: string,
  unit: string,
  points: { minute: string; value: number | undefined }[],
  kind: 'bars' | 'line',
  height: number,
): Html => {
  const W = 640
  const left = 46
  const right = 10
  const top = 8
  const bottom = 20
  const plotW = W - left - right
  const plotH = height - top - bottom
  const step = plotW / 60
  const values = points.map((p) => p.value).filter((v): v is number => v !== undefined)
  const peak = values.length ? Math.max(...values) : undefined
  const latest = values[values.length - 1]
  const max = niceCeil(peak ?? 0)
  const now = Date.now()
  const y = (v: number) => top + plotH - (v / max) * plotH
  // Minute slot 0 is an hour ago, 59 the current minute.
  const placed = points.flatMap((p) => {
    const slot = 59 - Math.floor((now - Date.parse(p.minute)) / 60_000)
    return p.value === undefined || slot < 0 || slot > 59 ? [] : [{ slot, value: p.value, minute: p.minute }]
  })
  const tip = (p: { minute: string; value: number }) => html`<title>${p.minute.slice(11, 16)} UTC: ${p.value}${unit}</title>`
  const grid = [0, max / 2, max].map(
    (v) => html`<line x1="${left}" y1="${y(v).toFixed(1)}" x2="${W - right}" y2="${y(v).toFixed(1)}" stroke="${v === 0 ? '#9aa4b5' : '#e3e7ee'}"/>
<text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" font-size="11" fill="#5b6474">${compact(v)}${unit}</text>`,
  )
  const ticks = [0, 15, 30, 45, 60].map((ago) => {
    const x = left + (60 - ago) * step
    return html`<text x="${x.toFixed(1)}" y="${height - 5}" text-anchor="${ago === 60 ? 'start' : ago === 0 ? 'end' : 'middle'}" font-size="11" fill="#5b6474">${ago === 0 ? 'now' : `−${ago} min`}</text>`
  })
  let marks: Html[]
  if (kind === 'bars') {
    marks = placed.map((p) => {
      const h = Math.max(p.value > 0 ? 1.5 : 0, (p.value / max) * plotH)
      return html`<rect x="${(left + p.slot * step + 1).toFixed(1)}" y="${(top + plotH - h).toFixed(1)}" width="${(step - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${p.slot === placed[placed.length - 1]?.slot ? '#1f5fbf' : '#7fa6e0'}">${tip(p)}</rect>`
    })
  } else {
    // A line through consecutive minutes; a missing minute (the service was down) breaks it.
    const runs: { slot: number; value: number; minute: string }[][] = []
    for (const p of placed) {
      const run = runs[runs.length - 1]
      const prev = run?.[run.length - 1]
      if (run && prev && p.slot === prev.slot + 1) run.push(p)
      else runs.push([p])
    }
    const cx = (slot: number) => (left + (slot + 0.5) * step).toFixed(1)
    marks = [
      ...runs.map((run) =>
        run.length > 1
          ? html`<polyline fill="none" stroke="#1f5fbf" stroke-width="2" points="${run.map((p) => `${cx(p.slot)},${y(p.value).toFixed(1)}`).join(' ')}"/>`
          : '',
      ),
      ...placed.map((p, i) => html`<circle cx="${cx(p.slot)}" cy="${y(p.value).toFixed(1)}" r="${i === placed.length - 1 ? 4 : 2.5}" fill="#1f5fbf">${tip(p)}</circle>`),
    ].filter((m): m is Html => m !== '')
  }
  const words = (v: number | undefined) => (v === undefined ? '—' : `${v}${unit}`)
  const empty = placed.length === 0
    ? html`<text x="${left + plotW / 2}" y="${top + plotH / 2}" text-anchor="middle" font-size="13" fill="#5b6474">no data in the last hour</text>`
    : ''
  return html`<figure class="chart" style="margin:0">
<figcaption><b>${title}</b> <span class="muted">latest <b class="latest">${words(latest)}</b>, peak ${words(peak)}</span></figcaption>
<svg viewBox="0 0 ${W} ${height}" role="img" aria-label="${title} over the last hour: latest ${words(latest)}, peak ${words(peak)}">
${grid}${ticks}${marks}${empty}</svg></figure>`
}

/** Counters by name as labelled numbers, largest first; "none" when there are none. */
const countList = (label: string, counts: Record<string, number> | undefined): Html => {
  const entries = Object.entries(counts ?? {}).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1])
  return html`<div class="counts" role="group" aria-label="${label}"><h4>${label}</h4>${entries.length === 0
    ? html`<p class="muted">none</p>`
    : html`<dl>${entries.map(([name, n]) => html`<dt>${name}</dt><dd>${n.toLocaleString('en')}</dd>`)}</dl>`}</div>`
}

/** A byte rate as an operator reads it. */
const bytes = (n: number): string =>
  n >= 1024 * 1024 ? `${(n / (1024 * 1024)).toFixed(1)} MB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KB` : `${n} B`

export const healthPanel = (s: Status, full: boolean): Html => {
  const verification = s.verification as Partial<VerifierStatus> | undefined
  const problems = Object.entries((s.problems ?? {}) as Record<string, { count?: number; message?: string; at?: string }>)
  const metric = (label: string, value: Html | string | number) => html`<div class="metric">${label}<b>${value}</b></div>`
  const jetstream = s.mode === 'jetstream'
  const proofs = s.proofs as { inFlight?: number; outcomes?: Record<string, number> } | undefined
  return html`<section class="card health" aria-labelledby="health-h">
<div class="row"><h2 id="health-h" style="margin:0">${jetstream ? 'Ingest health (Jetstream)' : 'Firehose health'}</h2>
<span class="badge ${s.connected ? 'ok' : 'bad'}" id="connection">${s.connected ? 'Connected' : 'Not connected'}</span>
${!s.connected && s.lastDisconnectReason ? html`<span class="muted">last disconnect: ${s.lastDisconnectReason}</span>` : ''}
${full ? '' : html`<a href="/admin/health" style="margin-left:auto">All firehose details</a>`}</div>
<div class="grid" style="margin-top:10px">
${metric('Source', jetstream ? html`Jetstream${s.jetstreamVersion ? ` ${s.jetstreamVersion}` : ''}, every record proven by its host` : 'Relay firehose')}
${metric(jetstream ? 'Instance' : 'Relay', html`<span class="mono">${s.sourceUrl ? s.sourceUrl.replace(/\?.*$/, '') : s.relay}</span>`)}
${metric(jetstream ? 'Cursor (time_us)' : 'Cursor (seq)', s.cursor ?? '—')}
${metric('Received', s.bytesPerSecond === undefined ? '—' : `${bytes(s.bytesPerSecond)}/s`)}
${jetstream ? metric('Proofs in flight', proofs?.inFlight ?? 0) : ''}
${metric('Lag', s.lagSeconds === undefined ? '—' : `${s.lagSeconds} s`)}
${metric('Status age', s.statusAgeSeconds === undefined ? '—' : `${s.statusAgeSeconds} s`)}
${metric('Reconnects', s.reconnects ?? 0)}
${metric('Malformed / rejected', `${s.errors.malformed} / ${s.errors.rejected}`)}
${metric('Relay problems', s.errors.problems)}
${metric('Verification queue', s.verificationQueue.oldestAgeSeconds === undefined ? s.verificationQueue.depth : `${s.verificationQueue.depth} (oldest ${s.verificationQueue.oldestAgeSeconds} s)`)}
</div>
<div class="charts">
${jetstream
  ? ''
  : minuteChart('Events per minute', '', s.history.map((p) => ({ minute: p.minute, value: p.events })), 'bars', full ? 170 : 110)}
${minuteChart('Lag', ' s', s.history.map((p) => ({ minute: p.minute, value: p.lagSeconds })), 'line', full ? 170 : 110)}
</div>
${full
  ? html`<h3 style="margin-top:16px">Details</h3><dl>
<dt>Cursor committed</dt><dd>${time(s.cursorUpdatedAt)}</dd>
<dt>Last relay event</dt><dd>${time(s.lastEventTime)}</dd>
<dt>Last disconnect</dt><dd>${s.lastDisconnectReason ?? '—'}</dd>
<dt>Frames / indexed</dt><dd>${s.framesReceived ?? 0} / ${s.eventsIndexed ?? 0}</dd>
<dt>Relay problems</dt><dd>${problems.length === 0 ? 'none' : problems.map(([name, p]) => html`<div><b>${name}</b> ×${p.count ?? 1} ${p.message ?? ''} (${time(p.at)})</div>`)}</dd>
</dl>
<h3 style="margin-top:16px">Counters</h3>
<div class="count-grid">
${countList('Malformed frames by reason', s.malformed)}
${countList('Rejected records by reason', s.rejected)}
${jetstream ? countList('Jetstream events by proof outcome', proofs?.outcomes) : ''}
${countList('Subject proofs by outcome', verification?.outcomes)}
${countList('Proof retries by reason', verification?.retries)}
<div class="counts" role="group" aria-label="Proof fetches"><h4>Proof fetches</h4><dl>
<dt>in flight</dt><dd>${verification?.inFlight ?? 0}</dd><dt>given up</dt><dd>${verification?.gaveUp ?? 0}</dd></dl></div>
</div>`
  : ''}
</section>`
}

const runBadge = (status: string): Html =>
  html`<span class="badge ${status === 'done' ? 'ok' : status === 'discovering' || status === 'syncing' ? 'warn' : ''}">${status}</span>`

/** Backfill runs (recent and active) and the resync queue, as the workers' tables hold them. */
const backfillPanel = (b: BackfillProgress): Html => html`<section class="card" aria-labelledby="backfill-h">
<h2 id="backfill-h">Backfill and resync</h2>
<div class="grid" role="group" aria-label="Resync queue">
<div class="metric">Resyncs pending<b>${b.resync.pending}</b></div>
<div class="metric">Resyncs retrying<b>${b.resync.retrying}</b></div>
<div class="metric">Resyncs ended by a verdict<b>${b.resync.failed}</b></div>
<div class="metric">Repos desynchronized<b>${b.resync.desynchronized}</b></div>
<div class="metric">Backfill runs shown<b>${b.runs.length}</b></div>
</div>
${b.resync.retries.length === 0
  ? ''
  : html`<h3 style="margin-top:14px">Resyncs retrying</h3>
<table><thead><tr><th scope="col">Repo</th><th scope="col">Attempts</th><th scope="col">Last error</th><th scope="col">Next attempt (UTC)</th></tr></thead><tbody>
${b.resync.retries.map((r) => html`<tr><td class="mono">${r.did}</td><td>${r.attempts}</td><td>${r.lastError ?? '—'}</td><td>${time(r.nextAttemptAt)}</td></tr>`)}</tbody></table>`}
<h3 style="margin-top:14px">Backfill runs</h3>
${b.runs.length === 0
  ? html`<p class="muted">No backfill run in the last hour.</p>`
  : html`<table><thead><tr><th scope="col">Run</th><th scope="col">Kind</th><th scope="col">Reason</th><th scope="col">Status</th>
<th scope="col">Repos done / total</th><th scope="col">Pending</th><th scope="col">Failed</th><th scope="col">Left to resync</th><th scope="col">Records</th><th scope="col">Started (UTC)</th></tr></thead><tbody>
${b.runs.map(
  (r) => html`<tr><td>#${r.id}</td><td>${r.kind}</td><td>${r.reason}${r.discovery
    ? html`<br><span class="badge bad">discovery failing</span> <span class="muted">${r.discovery.failures}× in a row, next try ${time(r.discovery.retryAt ?? undefined)}: ${r.discovery.error}</span>`
    : ''}</td><td>${runBadge(r.status)}</td>
<td>${r.repos.done} / ${r.repos.total}${r.repos.total > 0 ? html` <progress max="${r.repos.total}" value="${r.repos.done}" aria-label="Run ${r.id}: ${r.repos.done} of ${r.repos.total} repos done"></progress>` : ''}</td>
<td>${r.repos.pending}</td><td>${r.repos.failed}</td><td>${r.repos.left}</td><td>${r.records}</td><td>${time(r.createdAt)}</td></tr>`,
)}</tbody></table>`}
</section>`

/** What this replica pushes to subscribers, and every webhook endpoint's delivery state. */
export interface PushView {
  subscribers: number
  slowConsumersCut: number
  listening: boolean
  webhooks: EndpointStatus[]
}

const pushPanel = (p: PushView): Html => html`<section class="card" aria-labelledby="push-h">
<h2 id="push-h">Push</h2>
<div class="grid" role="group" aria-label="Subscriptions of this replica">
<div class="metric">Subscribers (this replica)<b>${p.subscribers}</b></div>
<div class="metric">Cut as too slow<b>${p.slowConsumersCut}</b></div>
<div class="metric">Change feed<b>${p.listening ? html`<span class="badge ok">listening</span>` : html`<span class="badge bad">polling only</span>`}</b></div>
</div>
<h3 style="margin-top:14px">Webhooks</h3>
${p.webhooks.length === 0
  ? html`<p class="muted">No webhook configured (WEBHOOK_URLS).</p>`
  : html`<table><thead><tr><th scope="col">URL</th><th scope="col">State</th><th scope="col">Pending</th><th scope="col">Delivered</th>
<th scope="col">Failed attempts</th><th scope="col">Last error</th><th scope="col">Next attempt (UTC)</th></tr></thead><tbody>
${p.webhooks.map(
  (w) => html`<tr><td class="mono">${w.url}</td><td>${w.consecutiveFailures > 0
    ? html`<span class="badge bad">failing</span> <span class="muted">${w.consecutiveFailures}× in a row since ${time(w.failingSince?.toISOString())}</span>`
    : html`<span class="badge ok">delivering</span>`}</td>
<td>${w.pending}</td><td>${w.delivered}</td><td>${w.failures}</td><td>${w.lastError ?? '—'}</td><td>${w.consecutiveFailures > 0 ? time(w.nextAttemptAt.toISOString()) : '—'}</td></tr>`,
)}</tbody></table>`}
</section>`

export const healthPage = (moderator: string, status: Status, backfill: BackfillProgress, push?: PushView): string =>
  page('Firehose health', html`${healthPanel(status, true)}${backfillPanel(backfill)}${push ? pushPanel(push) : ''}`, { section: 'health', moderator })

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
