/** Firehose health: the ingest's state and charts, backfill and resync runs, push and webhooks. */
import type { firehoseStatus } from '../admin.ts'
import type { BackfillProgress } from '../../db/backfill.ts'
import type { EndpointStatus } from '../../db/webhook.ts'
import type { VerifierStatus } from '../../db/verification.ts'
import { Html, html } from '../html.ts'
import { minuteChart } from './chart.ts'
import { page, time } from './frame.ts'

export type FirehoseStatus = Awaited<ReturnType<typeof firehoseStatus>>

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

export const healthPanel = (s: FirehoseStatus, full: boolean): Html => {
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
  : html`<table><thead><tr><th scope="col">Endpoint</th><th scope="col">State</th><th scope="col">Pending</th><th scope="col">Delivered</th>
<th scope="col">Failed attempts</th><th scope="col">Last error</th><th scope="col">Next attempt (UTC)</th></tr></thead><tbody>
${p.webhooks.map(
  (w) => html`<tr><td class="mono">${w.endpoint}</td><td>${w.consecutiveFailures > 0
    ? html`<span class="badge bad">failing</span> <span class="muted">${w.consecutiveFailures}× in a row since ${time(w.failingSince?.toISOString())}</span>`
    : html`<span class="badge ok">delivering</span>`}</td>
<td>${w.pending}</td><td>${w.delivered}</td><td>${w.failures}</td><td>${w.lastError ?? '—'}</td><td>${w.consecutiveFailures > 0 ? time(w.nextAttemptAt.toISOString()) : '—'}</td></tr>`,
)}</tbody></table>`}
</section>`

export const healthPage = (moderator: string, status: FirehoseStatus, backfill: BackfillProgress, push?: PushView): string =>
  page('Firehose health', html`${healthPanel(status, true)}${backfillPanel(backfill)}${push ? pushPanel(push) : ''}`, { section: 'health', moderator })
