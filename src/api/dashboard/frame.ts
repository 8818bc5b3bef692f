/** The frame every dashboard page shares (style, navigation, sign-out) and the pages outside any section. */
import { Html, html } from '../html.ts'
import type { Handles } from './handles.ts'

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
.handle { font-size: 12.5px; font-weight: 600; word-break: break-all; }
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

export const errorPage = (moderator: string | null, status: number, message: string): string =>
  page(
    'Error',
    html`<div class="notice error" role="alert"><b>${status}</b> ${message}</div><p><a href="/admin">Back to the dashboard</a></p>`,
    moderator ? { section: null, moderator } : undefined,
  )

/** A time as moderators read it: UTC, to the second, machine-readable underneath. */
export const time = (iso: string | undefined): Html | string =>
  iso ? html`<time datetime="${iso}">${iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}</time>` : '—'

/** A labelled text field of a filter form. */
export const text = (id: string, label: string, value: string | undefined, placeholder = ''): Html =>
  html`<div><label for="${id}">${label}</label><input id="${id}" name="${id}" value="${value ?? ''}" placeholder="${placeholder}"></div>`

/** A DID as moderators know people: the DID, and beside it the handle its document claims, when known. */
export const didLabel = (did: string, names: Handles, href?: string): Html => {
  const handle = names.get(did)
  const id = href ? html`<a class="mono" href="${href}">${did}</a>` : html`<span class="mono">${did}</span>`
  return handle ? html`${id} <span class="handle">@${handle}</span>` : id
}
