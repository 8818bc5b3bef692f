/** The invite search and one invite's history, with the moderation actions on it. */
import type { adminInviteView, auditEventView } from '../admin.ts'
import { Html, html } from '../html.ts'
import { didLabel, page, text, time } from './frame.ts'
import { NO_HANDLES, type Handles } from './handles.ts'
import { healthPanel, type FirehoseStatus } from './health.ts'

type InviteView = ReturnType<typeof adminInviteView>
type EventView = ReturnType<typeof auditEventView>

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

const localTime = (iso: string | undefined): string => (iso ? iso.slice(0, 16) : '')

export const searchPage = (
  moderator: string,
  form: SearchForm,
  result: { invites: InviteView[]; total: number; cursor?: string | undefined; nextHref?: string | undefined },
  status: FirehoseStatus,
  names: Handles = NO_HANDLES,
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
  (i) => html`<tr><td>${time(i.createdAt)}</td><td>${didLabel(i.inviter, names)}</td><td>${didLabel(i.invitee, names)}</td>
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

/** An invite whose record is gone: its audit trail outlives it. */
const NOT_HELD = html`<p class="muted">The service no longer holds this record (deleted long ago, rejected, or its author's account was deleted); its history remains.</p>`

export const invitePage = (
  moderator: string,
  uri: string,
  invite: InviteView | undefined,
  events: EventView[],
  notice: string | undefined,
  names: Handles = NO_HANDLES,
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
<dt>Inviter</dt><dd>${didLabel(invite.inviter, names, `/admin?inviter=${encodeURIComponent(invite.inviter)}`)}</dd>
<dt>Invitee</dt><dd>${didLabel(invite.invitee, names, `/admin?invitee=${encodeURIComponent(invite.invitee)}`)}</dd>
<dt>Subject</dt><dd class="mono">${invite.subjectUri}</dd>
<dt>Role</dt><dd>${invite.role ?? '—'}</dd>
<dt>Message</dt><dd>${invite.message ?? html`<span class="muted">none</span>`}</dd>
<dt>Created / indexed</dt><dd>${time(invite.createdAt)} / ${time(invite.indexedAt)}</dd>
${invite.expiresAt ? html`<dt>Expires</dt><dd>${time(invite.expiresAt)}</dd>` : ''}
${invite.deletedAt ? html`<dt>Deleted by author</dt><dd>${time(invite.deletedAt)}</dd>` : ''}
${invite.acceptanceUri ? html`<dt>Acceptance</dt><dd class="mono">${invite.acceptanceUri} (${time(invite.acceptedAt)})</dd>` : ''}
</dl>`
  : NOT_HELD}
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
<td class="mono">${e.subject === uri ? 'this invite' : e.subject.startsWith('did:') ? didLabel(e.subject, names) : html`acceptance ${short(e.subject)}`}</td>
<td>${lines([e.reason, e.detail && html`<span class="muted">${e.detail}</span>`, e.message && `“${e.message}”`])}</td>
<td class="mono">${e.seq ?? '—'}</td><td class="mono">${e.rev ?? '—'}</td><td>${e.actor ? html`${e.actorKind === 'service-auth' ? didLabel(e.actor, names) : e.actor} <span class="muted">(${e.actorKind})</span>` : '—'}</td></tr>`,
)}</tbody></table></section>`,
    { section: null, moderator },
  )
}
