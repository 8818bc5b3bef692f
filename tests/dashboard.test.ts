import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { createUser, startHarness, testConfig, waitFor, type Harness, type Ref, type User } from './support/harness.ts'
import { backfillProgress, createDidRun } from '../src/db/backfill.ts'
import { views } from './support/views.ts'
import { ADMIN_PASSWORD, moderator } from './support/admin.ts'
import { refusedPort } from './support/postgres.ts'

const CHROMIUM = '/usr/bin/chromium'
const SHOTS = path.resolve('tests/.screenshots')

let h: Harness
let v: ReturnType<typeof views>
let alice: User
let bob: User
let invite: Ref
let profile: string
let browser: BrowserContext
let page: Page

beforeAll(async () => {
  // The browser test is part of the suite: a machine without Chromium fails it, never skips it.
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (see .ci/run)`)
  profile = await mkdtemp(path.join(os.tmpdir(), 'collab-chromium-'))
  // Chromium starts while the service indexes the test's records.
  const launching = chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1366, height: 768 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
  launching.catch(() => {})
  ;[alice, bob] = await Promise.all([createUser('alice'), createUser('bob')])
  // A webhook receiver that refuses every connection: its failures must show on the health page.
  const hook = `http://127.0.0.1:${await refusedPort()}/hook`
  h = await startHarness({
    admin: { ...testConfig('unused').admin, password: ADMIN_PASSWORD },
    webhooks: { urls: [hook], secret: 'a webhook secret of some length', timeoutMs: 1000, backoffBaseMs: 50, maxBackoffMs: 200 },
  })
  v = views(h)
  const node = await alice.node('Reading list')
  invite = await alice.invite(node, bob, { message: 'Join my reading list, or else.' })
  await alice.invite(await alice.node('Field notes'), bob)
  await alice.invite(node, alice)
  await v.waitForState(bob, invite.uri, 'pending')
  await moderator(h).waitForInvite(invite.uri, (i) => i.verification === 'verified')
  await mkdir(SHOTS, { recursive: true })
  browser = await launching
  page = browser.pages()[0] ?? (await browser.newPage())
})
afterAll(async () => {
  await browser?.close()
  if (profile) await rm(profile, { recursive: true, force: true })
  await h?.stop()
})

const shot = (name: string, fullPage = false) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage })

describe('the moderator dashboard in Chromium', () => {
  it('signs in with the keyboard, searches, opens a history, takes an invite down with a reason', async () => {
    await page.goto(`${h.service.url}/admin`)
    await expect.poll(() => page.title()).toContain('Sign in')
    await page.getByLabel('Your name').fill('Dana')
    await page.getByLabel('Admin password').fill('not the password')
    await page.keyboard.press('Enter')
    await page.getByRole('alert').filter({ hasText: 'Wrong password' }).waitFor()

    // Keyboard only: the fields and the button in tab order, Enter submits.
    await page.getByLabel('Your name').fill('')
    await page.getByLabel('Your name').focus()
    await page.keyboard.type('Dana')
    await page.keyboard.press('Tab')
    await page.keyboard.type(ADMIN_PASSWORD)
    await shot('1-sign-in')
    await page.keyboard.press('Tab')
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Sign in')
    await page.keyboard.press('Enter')

    await page.getByRole('heading', { name: 'Search invites' }).waitFor()
    expect(await page.getByText('Signed in as Dana').count()).toBe(1)
    await page.getByLabel('Inviter DID').fill(alice.did)
    await page.getByRole('button', { name: 'Search' }).click()
    await page.getByRole('heading', { name: /^2 invites$/ }).waitFor()
    // Handles beside the DIDs, from the DID documents the service resolved to verify the commits.
    await waitFor(async () => (await page.getByText(`@${alice.handle}`).count()) > 0 || void (await page.reload()), 'the handle beside the DID')
    await shot('2-search-results')

    const rkey = invite.uri.split('/').pop() ?? ''
    await page.getByRole('link', { name: `History of invite ${rkey}` }).click()
    await page.getByRole('heading', { name: 'History' }).waitFor()
    const history = page.locator('section', { has: page.getByRole('heading', { name: 'History' }) }).locator('tbody tr')
    expect(await history.count()).toBeGreaterThanOrEqual(2)
    expect(await history.first().innerText()).toContain('created')
    expect(await page.getByText('Join my reading list, or else.').count()).toBeGreaterThan(0)
    await shot('3-invite-history', true)

    // The browser's own validation keeps a takedown without a reason from being sent.
    const rows = await history.count()
    const reason = page.getByLabel('Reason').first()
    expect(await reason.evaluate((el) => (el as HTMLTextAreaElement).validity.valueMissing)).toBe(true)
    await page.getByRole('button', { name: 'Take down invite' }).click()
    expect(await history.count()).toBe(rows)
    await reason.fill('Harassment: reported by the invitee')
    await page.getByRole('button', { name: 'Take down invite' }).click()
    await page.getByRole('status').filter({ hasText: 'Invite taken down' }).waitFor()
    const last = await history.last().innerText()
    expect(last).toContain('taken down')
    expect(last).toContain('Harassment: reported by the invitee')
    expect(last).toContain('Dana')
    await page.getByRole('button', { name: 'Restore invite' }).waitFor()
    await shot('4-takedown-confirmation', true)

    expect(await v.find(bob, invite.uri)).toBeUndefined()
    expect((await v.list(alice, { inviter: alice.did })).invites.map((i) => i.uri)).not.toContain(invite.uri)
  })

  it('shows firehose health with the event-rate and lag chart', async () => {
    await page.getByRole('link', { name: 'Firehose health' }).click()
    await page.getByRole('heading', { name: 'Firehose health' }).waitFor()
    expect(await page.locator('#connection').innerText()).toBe('Connected')
    const events = page.getByRole('img', { name: /Events per minute over the last hour: latest \d+/ })
    const lag = page.getByRole('img', { name: /Lag over the last hour: latest \d+ s/ })
    expect(await events.count()).toBe(1)
    expect(await lag.count()).toBe(1)
    // Charts that read at a glance: a labelled value axis and a time axis, and visible marks.
    for (const [chart, zero] of [[events, '0'], [lag, '0 s']] as const) {
      const labels = await chart.locator('text').allTextContents()
      expect(labels).toEqual(expect.arrayContaining([zero, 'now', '−30 min', '−60 min']))
      const box = await chart.boundingBox()
      expect(box?.height).toBeGreaterThan(80)
    }
    expect(await events.locator('rect').count()).toBeGreaterThan(0)
    expect(await lag.locator('circle').count()).toBeGreaterThan(0)
    await shot('5-health', true)
  })

  it('gives the Lag figure and the latest point of the lag chart the same value', async () => {
    // This minute's lag peaked at 102 s and is caught up since (the live ingester keeps it so).
    await h.service.pool.query(
      `INSERT INTO ingest_sample (relay_url, minute, seq_first, seq_last, lag_last, lag_max)
       SELECT relay_url, date_trunc('minute', now()), seq, seq, 0, 102 FROM relay_cursor WHERE relay_url = $1
       ON CONFLICT (relay_url, minute) DO UPDATE SET lag_last = 0, lag_max = 102`,
      [h.config.relayUrl],
    )
    await page.goto(`${h.service.url}/admin/health`)
    const figure = await page.locator('.metric').filter({ hasText: /^Lag/ }).locator('b').innerText()
    const chart = page.locator('figure.chart').filter({ has: page.locator('figcaption > b', { hasText: /^Lag$/ }) })
    expect(await chart.locator('.latest').innerText()).toBe(figure)
    expect(figure).toMatch(/^\d+ s$/)
  })

  it('shows push: subscribers, and each webhook endpoint failing with its error', async () => {
    await page.goto(`${h.service.url}/admin/health`)
    const push = page.getByRole('region', { name: 'Push' })
    await push.waitFor()
    await waitFor(async () => {
      await page.reload()
      return /failing/.test(await push.innerText())
    }, 'the failing webhook on the page')
    const text = await push.innerText()
    // The cause, not only fetch's "fetch failed".
    expect(text).toMatch(/fetch failed \(.+\)/)
    expect(text).toMatch(/Subscribers \(this replica\)/)
  })

  it('shows backfill runs, the resync queue and the counters as labelled numbers', async () => {
    // A run of the kind the CLI starts (`npm run backfill -- --did ...`), and a resync request.
    const run = await createDidRun(h.service.pool, [alice.did], 'dashboard test: one repo')
    h.service.backfiller.wake()
    await waitFor(async () => (await backfillProgress(h.service.pool)).runs.find((r) => r.id === run && r.repos.done === 1), 'the run to sync its repo')
    await page.reload()
    const section = page.locator('section', { has: page.getByRole('heading', { name: 'Backfill and resync' }) })
    await section.waitFor()
    expect(await page.getByText('not implemented').count()).toBe(0)
    const row = section.locator('tbody tr', { hasText: `#${run}` })
    expect(await row.innerText()).toContain('dashboard test: one repo')
    expect(await row.innerText()).toMatch(/1 \/ 1/)
    const queue = section.getByRole('group', { name: 'Resync queue' })
    for (const label of ['Resyncs pending', 'Resyncs retrying', 'Resyncs ended by a verdict', 'Repos desynchronized']) {
      expect(await queue.getByText(label).count()).toBe(1)
    }
    // Counters: a name and a number each, never raw JSON.
    const body = await page.locator('main').innerText()
    expect(body).not.toMatch(/\{"/)
    const rejected = page.getByRole('group', { name: 'Rejected records by reason' })
    expect(await rejected.locator('dt', { hasText: 'self-invite' }).count()).toBe(1)
    expect(Number(await rejected.locator('dt:has-text("self-invite") + dd').innerText())).toBeGreaterThanOrEqual(1)
    expect(await page.getByRole('group', { name: 'Subject proofs by outcome' }).count()).toBe(1)
    const fetches = page.getByRole('group', { name: 'Proof fetches' })
    expect(await fetches.locator('dt', { hasText: 'in flight' }).count()).toBe(1)
    await shot('5b-health-backfill', true)
  })

  it('lists the rejection log and the inviter volume', async () => {
    await page.getByRole('link', { name: 'Rejections' }).click()
    await page.getByText('self-invite').first().waitFor()
    await shot('6-rejections')
    await page.getByRole('link', { name: 'Inviter volume' }).click()
    const cell = page.getByRole('cell', { name: alice.did }).first()
    await cell.waitFor()
    expect(await cell.innerText()).toContain(`@${alice.handle}`)
    await shot('7-volume')
  })

  it('lists blocked inviters, one with no invite held too, and unblocks one from the list with a reason', async () => {
    const idle = 'did:plc:ewvi7nxzyoun6zhxrhs64oiz'
    await moderator(h).act('blockInviter', { did: idle, reason: 'Spam wave, every invite already deleted' })
    await page.getByRole('link', { name: 'Inviter volume' }).click()
    const blocked = page.getByRole('region', { name: 'Blocked inviters' })
    const row = blocked.locator('tbody tr', { hasText: idle })
    await row.waitFor()
    expect(await row.innerText()).toContain('Spam wave')
    // The browser keeps an unblock without a reason from being sent.
    await row.getByRole('button', { name: `Unblock ${idle}` }).click()
    expect(await row.count()).toBe(1)
    await row.getByLabel(`Reason for unblocking ${idle}`).fill('Appeal accepted')
    await row.getByRole('button', { name: `Unblock ${idle}` }).click()
    await page.getByRole('status').filter({ hasText: 'Inviter unblocked' }).waitFor()
    expect(await blocked.locator('tbody tr', { hasText: idle }).count()).toBe(0)
    await shot('8-unblocked')
  })

  it('after signing out every page asks to sign in again', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.getByRole('heading', { name: 'Moderator sign-in' }).waitFor()
    await page.goto(`${h.service.url}/admin/health`)
    await page.getByRole('heading', { name: 'Moderator sign-in' }).waitFor()
  })
})
