/** The rejection log and the per-inviter volume with the blocked inviters. */
import type { BlockRow, RejectionRow, VolumeRow } from '../../db/moderation.ts'
import { html } from '../html.ts'
import { page, text, time } from './frame.ts'

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
