/** The rejection log and the per-inviter volume with the blocked inviters. */
import type { BlockRow, RejectionRow, VolumeRow } from '../../db/moderation.ts'
import { Html, html } from '../html.ts'
import { didLabel, page, text, time } from './frame.ts'
import { NO_HANDLES, type Handles } from './handles.ts'

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

/** Lifting a block from the list: a block holds whether or not the inviter has invites to open. */
const unblockForm = (did: string, i: number): Html => html`<form method="post" action="/admin/action" class="row">
<input type="hidden" name="action" value="unblockInviter"><input type="hidden" name="target" value="${did}">
<input type="hidden" name="back" value="/admin/volume">
<label class="sr-only" for="unblock-${i}">Reason for unblocking ${did}</label>
<input id="unblock-${i}" name="reason" required maxlength="2000" placeholder="Reason (kept in the audit trail)" style="flex:1;min-width:160px">
<button type="submit">Unblock<span class="sr-only"> ${did}</span></button></form>`

export const volumePage = (
  moderator: string,
  rows: VolumeRow[],
  thresholds: { perHour: number; perDay: number },
  blocks: BlockRow[],
  names: Handles = NO_HANDLES,
  notice?: string,
): string =>
  page(
    'Inviter volume',
    html`${notice ? html`<div class="notice" role="status" id="notice">${notice}</div>` : ''}
<section class="card" aria-labelledby="vol-h"><h2 id="vol-h">Invites per inviter</h2>
<p class="muted">Invites created in the last hour and day, busiest first. Flagged at ${thresholds.perHour} in one hour or ${thresholds.perDay} in a day.</p>
<table><thead><tr><th scope="col">Inviter</th><th scope="col">Last hour</th><th scope="col">Peak hour</th><th scope="col">Last day</th><th scope="col">Flag</th><th scope="col"><span class="sr-only">Open</span></th></tr></thead><tbody>
${rows.map(
  (r) => html`<tr><td>${didLabel(r.inviter, names)}</td><td>${r.lastHour}</td><td>${r.peakHour}</td><td>${r.lastDay}</td>
<td>${r.blocked ? html`<span class="badge bad">blocked</span>` : r.likelySpam ? html`<span class="badge warn">likely spam</span>` : ''}</td>
<td><a href="/admin?inviter=${encodeURIComponent(r.inviter)}">Invites<span class="sr-only"> of ${r.inviter}</span></a></td></tr>`,
)}</tbody></table>${rows.length === 0 ? html`<p class="muted">No invites in the last day.</p>` : ''}</section>
<section class="card" aria-labelledby="blocks-h"><h2 id="blocks-h">Blocked inviters</h2>
${blocks.length === 0
  ? html`<p class="muted">None.</p>`
  : html`<table><thead><tr><th scope="col">Inviter</th><th scope="col">Reason</th><th scope="col">By</th><th scope="col">Since</th><th scope="col">Unblock</th></tr></thead><tbody>
${blocks.map((b, i) => html`<tr><td>${didLabel(b.did, names, `/admin?inviter=${encodeURIComponent(b.did)}`)}</td><td>${b.reason}</td><td>${b.actor}</td><td>${time(b.at.toISOString())}</td>
<td>${unblockForm(b.did, i)}</td></tr>`)}
</tbody></table>`}</section>`,
    { section: 'volume', moderator },
  )
