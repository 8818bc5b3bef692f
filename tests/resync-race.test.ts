import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, inject, it } from 'vitest'
import { advanceRepoState, requestResync } from '../src/db/repo-state.ts'
import { createUser, pdsUrl, startHarness, waitFor } from './support/harness.ts'
import { startPlcFront } from './support/fault-proxy.ts'
import { views } from './support/views.ts'

/** A PDS front that holds the first `getRepo` until released, so a sync is in flight for as long as a test needs. */
const startGatedPds = async (target: string) => {
  let release: () => void = () => {}
  const opened = new Promise<void>((r) => (release = r))
  let first = true
  const state = { getRepos: 0, held: 0 }
  const server = http.createServer((req, res) => {
    const getRepo = (req.url ?? '').startsWith('/xrpc/com.atproto.sync.getRepo')
    void (async () => {
      if (getRepo) {
        state.getRepos++
        if (first) {
          first = false
          state.held++
          await opened
          state.held--
        }
      }
      const upstream = await fetch(new URL(req.url ?? '/', target), { method: req.method, redirect: 'manual' })
      const body = Buffer.from(await upstream.arrayBuffer())
      res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/octet-stream' })
      res.end(body)
    })().catch(() => req.socket.destroy())
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    state,
    release: () => release(),
    close: () =>
      new Promise<void>((r) => {
        release()
        server.close(() => r())
        server.closeAllConnections()
      }),
  }
}

describe('resyncs', () => {
  it('a resync requested while the repo is being synced is not lost, and the rev never moves back', async () => {
    const [a, b] = await Promise.all([createUser('rra'), createUser('rrb')])
    const node = await a.node()
    const invite = await a.invite(node, b)
    const pds = await startGatedPds(pdsUrl())
    const front = await startPlcFront(inject('plcUrl'), pdsUrl(), pds.url, [a.did])
    const h = await startHarness({ plcUrl: front.url })
    try {
      await views(h).waitForState(b, invite.uri, 'pending')
      await requestResync(h.service.pool, a.did, 'test: the first request')
      h.service.backfiller.wake()
      await waitFor(async () => pds.state.held > 0, 'the sync to be in flight')
      // Say a chain break after the snapshot was taken: it needs a snapshot of its own.
      await requestResync(h.service.pool, a.did, 'test: a request while the sync runs')
      const during = await h.service.pool.query('SELECT status FROM repo_state WHERE did = $1', [a.did])
      expect(during.rows[0]?.status).toBe('desynchronized')
      pds.release()
      await waitFor(async () => pds.state.getRepos >= 2, 'the repo to be fetched again', 15_000)
      const done = await waitFor(async () => {
        const res = await h.service.pool.query<{ status: string; reason: string }>('SELECT status, reason FROM repo_sync WHERE did = $1', [a.did])
        return res.rows[0]?.status === 'done' ? res.rows[0] : undefined
      }, 'the second sync to finish')
      expect(done.reason).toMatch(/the first request/)
      const state = await h.service.pool.query<{ rev: string; data_cid: string; status: string }>(
        'SELECT rev, data_cid, status FROM repo_state WHERE did = $1',
        [a.did],
      )
      const held = state.rows[0]
      expect(held?.status).toBe('synced')

      // A snapshot older than the position held (a slow sync, a stale PDS) does not move it back.
      await advanceRepoState(h.service.pool, a.did, '2222222222222', 'bafyolder', true)
      const after = await h.service.pool.query('SELECT rev, data_cid FROM repo_state WHERE did = $1', [a.did])
      expect(after.rows[0]).toEqual({ rev: held?.rev, data_cid: held?.data_cid })
    } finally {
      await h.stop()
      await front.close()
      await pds.close()
    }
  }, 60_000)
})
