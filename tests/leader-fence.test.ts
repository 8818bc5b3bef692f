import { describe, expect, inject, it } from 'vitest'
import { LEADER_APPLICATION_NAME } from '../src/db/leader.ts'
import { INVITE_NSID } from '../src/db/effects.ts'
import { commitBatch } from '../src/db/store.ts'
import { FencedError } from '../src/db/fence.ts'
import { markReconciled } from '../src/db/reconcile.ts'
import { saveIngestStatus } from '../src/db/stream-cursor.ts'
import { claimJobs, recordProof, recordRetry, type VerifyJob } from '../src/db/verification.ts'
import { registerEndpoints, takeOverEndpoints } from '../src/db/webhook.ts'
import { createUser, startHarness, waitFor, type Harness } from './support/harness.ts'
import { startPgProxy } from './support/pg-proxy.ts'
import { views } from './support/views.ts'

/** What readers can see of some repos' records: what a replay of the stream must also reach. */
const visibleState = async (h: Harness, dids: string[]) => {
  const invites = await h.service.pool.query(
    `SELECT uri, deleted_at IS NOT NULL AS deleted, CASE WHEN deleted_at IS NULL THEN cid END AS cid, invitee, verification
     FROM invite WHERE inviter = ANY($1) ORDER BY uri`,
    [dids],
  )
  const acceptances = await h.service.pool.query('SELECT uri, cid, invite_uri FROM acceptance WHERE author = ANY($1) ORDER BY uri', [dids])
  return { invites: invites.rows, acceptances: acceptances.rows }
}

const cursorOf = async (h: Harness): Promise<number | null> => {
  const res = await h.service.pool.query<{ seq: number }>('SELECT seq FROM relay_cursor WHERE relay_url = $1', [h.config.relayUrl])
  return res.rows[0]?.seq ?? null
}

describe('leadership that cannot split', () => {
  it('a leader whose lock connection silently dies stops writing before another takes over', async () => {
    const [a, b] = await Promise.all([createUser('lfa'), createUser('lfb')])
    const proxy = await startPgProxy(inject('databaseUrl'))
    // The first leader reaches Postgres through the proxy. Its liveness check is slow on purpose
    // (a minute), so only the fence stands between its batches and the new leader's.
    const first = await startHarness({ databaseUrl: proxy.url, leaderCheckMs: 60_000 })
    let second: Harness | undefined
    try {
      expect(first.service.leader).toBe(true)
      const node = await a.node()
      const kept = await a.invite(node, b)
      const doomed = await a.invite(node, b)
      await views(first).waitForState(b, doomed.uri, 'pending')
      await views(first).barrier(a, b)

      second = await startHarness({ databaseSchema: first.config.databaseSchema })
      expect(second.service.leader).toBe(false)
      expect(proxy.silence(LEADER_APPLICATION_NAME)).toBe(1)
      // Postgres ended the first leader's session and released the lock: the second takes it.
      await waitFor(async () => second?.service.leader === true, 'the second replica to lead', 10_000)

      // The first has heard nothing of it. A batch of its own, from now on, cannot land.
      const before = await cursorOf(second)
      await expect(commitBatch(first.service.pool, first.config.relayUrl, [], 2 ** 40, { deposed: true })).rejects.toBeInstanceOf(FencedError)
      expect(await cursorOf(second)).toBe(before)
      // And it learnt from the refused batch that it is deposed, long before its liveness check.
      await waitFor(async () => !first.service.leader, 'the first replica to stop leading', 10_000)

      // Writes after the takeover: the second replica indexes them.
      await a.delete(doomed.uri)
      await b.accept(kept, node)
      const v = views(second)
      await v.waitForState(b, kept.uri, 'accepted')
      await v.waitForState(b, doomed.uri, 'rejected')
      await v.barrier(a, b)

      // The index equals what was written: the same as a fresh replay of the whole stream.
      const oracle = await startHarness()
      try {
        await views(oracle).barrier(a, b)
        await v.barrier(a, b)
        expect(await visibleState(second, [a.did, b.did])).toEqual(await visibleState(oracle, [a.did, b.did]))
      } finally {
        await oracle.stop()
      }
    } finally {
      await second?.stop()
      await first.stop()
      await proxy.close()
    }
  }, 90_000)

  it("a deposed leader's subject proofs, retries, webhook leases and status do not land, and the first refused one deposes it", async () => {
    const hook = 'http://127.0.0.1:9/fence-hook'
    const proxy = await startPgProxy(inject('databaseUrl'))
    const first = await startHarness({ databaseUrl: proxy.url, leaderCheckMs: 60_000 })
    let second: Harness | undefined
    try {
      expect(first.service.leader).toBe(true)
      // Its stream batches would tell it of the takeover by themselves: with them quiet, only the
      // writes below can.
      await first.service.indexer.stop()
      await first.service.verifier.stop()
      second = await startHarness({ databaseSchema: first.config.databaseSchema })
      const db = second.service.pool
      expect(proxy.silence(LEADER_APPLICATION_NAME)).toBe(1)
      await waitFor(async () => second?.service.leader === true, 'the second replica to lead', 10_000)
      expect(first.service.leader).toBe(true)
      const inviteUri = `at://did:plc:fenceinviter/${INVITE_NSID}/3kfence`
      // Not due for an hour: the new leader's own verifier leaves it alone.
      await db.query(`INSERT INTO verify_queue (invite_uri, invite_cid, next_attempt_at) VALUES ($1, 'bafyinvite', now() + interval '1 hour')`, [inviteUri])
      await registerEndpoints(db, [hook])

      const subjectUri = 'at://did:plc:fenceinviter/pub.chive.eprint.submission/3kfence'
      const invite = { inviter: 'did:plc:fenceinviter', subjectUri, subjectCid: 'bafysubject' }
      const job: VerifyJob = { inviteUri, inviteCid: 'bafyinvite', attempts: 0, invite }
      const proven = recordProof(first.service.pool, { ...job, invite }, { repo: invite.inviter, collection: 'pub.chive.eprint.submission', currentCid: 'bafysubject' })
      await expect(proven).rejects.toBeInstanceOf(FencedError)
      await waitFor(async () => !first.service.leader, 'the first replica to stop leading', 10_000)
      await expect(recordRetry(first.service.pool, job, 'timeout', 1000, 30)).rejects.toBeInstanceOf(FencedError)
      await expect(recordRetry(first.service.pool, job, 'timeout', 1000, 1)).rejects.toBeInstanceOf(FencedError)
      await expect(claimJobs(first.service.pool, 10, 60_000)).rejects.toBeInstanceOf(FencedError)
      await expect(takeOverEndpoints(first.service.pool, [hook], 'deposed', 60_000)).rejects.toBeInstanceOf(FencedError)
      await expect(saveIngestStatus(first.service.pool, first.config.relayUrl, { deposed: true })).rejects.toBeInstanceOf(FencedError)
      await expect(markReconciled(first.service.pool, invite.inviter)).rejects.toBeInstanceOf(FencedError)

      expect((await db.query('SELECT 1 FROM subject_record WHERE uri = $1', [subjectUri])).rowCount).toBe(0)
      const queued = await db.query<{ attempts: number; last_error: string | null }>('SELECT attempts, last_error FROM verify_queue WHERE invite_uri = $1', [inviteUri])
      expect(queued.rows).toEqual([{ attempts: 0, last_error: null }])
      const endpoint = await db.query<{ leased_by: string | null }>('SELECT leased_by FROM webhook_endpoint WHERE url = $1', [hook])
      expect(endpoint.rows[0]?.leased_by).not.toBe('deposed')
      const status = await db.query(`SELECT 1 FROM ingest_status WHERE status->>'deposed' = 'true'`)
      expect(status.rowCount).toBe(0)
    } finally {
      await second?.stop()
      // A leader that never learnt it was deposed would wait for ever on its silenced lock.
      await proxy.close()
      await first.stop()
    }
  }, 60_000)

  it('the liveness check drops a lock connection that went silent, with no batch to tell', async () => {
    const proxy = await startPgProxy(inject('databaseUrl'))
    const h = await startHarness({ databaseUrl: proxy.url, leaderCheckMs: 500 })
    try {
      expect(h.service.leader).toBe(true)
      const cutAt = Date.now()
      expect(proxy.silence(LEADER_APPLICATION_NAME)).toBe(1)
      await waitFor(async () => !h.service.leader, 'the leader to notice', 10_000)
      // One interval for the check to start, one for it to time out.
      expect(Date.now() - cutAt).toBeLessThan(3000)
      // It campaigns again on a fresh connection, and leads under a new epoch.
      await waitFor(async () => h.service.leader, 'leadership to be retaken', 10_000)
      const epoch = await h.service.pool.query<{ epoch: number }>('SELECT epoch FROM leader_epoch')
      expect(Number(epoch.rows[0]?.epoch)).toBe(2)
    } finally {
      await h.stop()
      await proxy.close()
    }
  }, 60_000)
})
