import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { Pool } from '../db/pool.ts'
import { readCursor } from '../db/stream-cursor.ts'
import { queueStats, type QueueStats } from '../db/verification.ts'
import { backfillProgress, type BackfillProgress } from '../db/backfill.ts'
import type { IndexerStatus } from '../pipeline/status.ts'
import type { VerifierStatus } from '../db/verification.ts'
import type { BackfillStatus } from '../workers/backfill.ts'
import type { PushSources } from './context.ts'
import { endpointStatus, type EndpointStatus } from '../db/webhook.ts'

/** What this process knows about its workers, read (never driven) at scrape time. */
export interface MetricSources {
  pool: Pool
  relayUrl: string
  indexer: { snapshotStatus(): IndexerStatus }
  verifier: { readonly status: VerifierStatus }
  backfiller: { readonly status: BackfillStatus }
  push?: PushSources | undefined
}

export interface Metrics {
  /** The Prometheus text exposition of every metric. */
  scrape(): Promise<string>
  readonly contentType: string
  observeRequest(route: string, method: string, statusCode: number, seconds: number): void
}

interface DatabaseView {
  cursor: number | null
  queue: QueueStats
  backfill: BackfillProgress
  webhooks: EndpointStatus[]
}

const PREFIX = 'chive_indexer_'

/**
 * Drops samples whose value is unknown. prom-client prints NaN as `Nan`, which strict parsers and
 * OpenMetrics refuse; our gauges are NaN when unknown (no event yet, database away) and so are
 * its own event-loop gauges before their first measurement. An absent sample is Prometheus'
 * "no value"; a 0 would look healthy.
 */
const withoutUnknown = (text: string): string => text.replace(/^[^#\n][^\n]* Nan\n/gm, '')

/**
 * Prometheus metrics. Ingest, verification and backfill figures are read from the workers'
 * status objects and from Postgres when scraped, so the hot paths carry no metric code.
 */
export const createMetrics = (sources: MetricSources): Metrics => {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  // Read once per scrape, before the collectors run; null when the database did not answer.
  let db: DatabaseView | null = null
  let ingest: IndexerStatus = sources.indexer.snapshotStatus()

  const family = (name: string, help: string, labelNames: string[] = []) => ({ name: PREFIX + name, help, labelNames, registers: [registry] })
  const entries = (read: () => Record<string, number> | undefined) => Object.entries(read() ?? {})
  const counter = (name: string, help: string, read: () => number) =>
    new Counter({ ...family(name, help), collect() { this.reset(); this.inc(read()) } })
  const counterBy = (name: string, help: string, label: string, read: () => Record<string, number> | undefined) =>
    new Counter({ ...family(name, help, [label]), collect() { this.reset(); for (const [v, n] of entries(read)) this.inc({ [label]: v }, n) } })
  // Unknown (no event yet, database away): NaN, which the scrape leaves out (withoutUnknown).
  const gauge = (name: string, help: string, read: () => number | null | undefined) =>
    new Gauge({ ...family(name, help), collect() { this.set(read() ?? Number.NaN) } })
  const gaugeBy = (name: string, help: string, label: string, read: () => Record<string, number> | undefined) =>
    new Gauge({ ...family(name, help, [label]), collect() { this.reset(); for (const [v, n] of entries(read)) this.set({ [label]: v }, n) } })

  counter('frames_received_total', 'Frames read from the relay.', () => ingest.framesReceived)
  counter('events_indexed_total', 'Effects of relay events committed to Postgres.', () => ingest.eventsIndexed)
  counter('events_stale_total', 'Effects ignored because a newer revision was already applied.', () => ingest.staleIgnored)
  counterBy('events_rejected_total', 'Records and ops refused, by reason.', 'reason', () => ingest.rejected)
  counterBy('frames_malformed_total', 'Frames that could not be decoded or processed, by reason.', 'reason', () => ingest.malformed)
  counterBy('stream_problems_total', 'Problems reported by the relay (#info and error frames), by name.', 'name', () =>
    Object.fromEntries(Object.values(ingest.problems).map((p) => [p.name, p.count])),
  )
  gauge('repos_parked', 'Repos whose next event waits for a retry (identity, PDS or database trouble).', () => ingest.parkedRepos)
  gauge('repo_queue_events', 'Events waiting in per-repo queues.', () => ingest.queuedEvents)
  gauge('repo_queue_bytes', 'Bytes of the events waiting in per-repo queues.', () => ingest.queuedBytes)
  counterBy('ingest_retries_total', 'Events retried after a transient failure parked their repo, by reason.', 'reason', () => ingest.retries)
  counter('signatures_deferred_total', 'Commits of tracked repos whose signature check was left to their repo\'s latest commit.', () => ingest.deferredSignatures)
  counter('resyncs_requested_total', 'Repo resyncs requested after a broken sync 1.1 chain.', () => ingest.resyncsRequested)
  counter('relay_reconnects_total', 'Reconnections to the relay.', () => ingest.reconnects)
  gauge('relay_connected', '1 while the relay subscription is open.', () => (ingest.connected ? 1 : 0))
  gauge('lag_seconds', 'Now minus the time of the last commit event read.', () => {
    const t = ingest.lastEventTime === null ? Number.NaN : Date.parse(ingest.lastEventTime)
    return Number.isNaN(t) ? null : Math.max(0, (Date.now() - t) / 1000)
  })
  gaugeBy('source_mode', '1 for the source events come from: firehose (a relay) or jetstream (proofs from each host).', 'mode', () => ({ [ingest.mode]: 1 }))
  counter('source_bytes_received_total', 'Bytes of messages received from the relay or Jetstream.', () => ingest.bytesReceived)
  gauge('source_bytes_per_second', 'Bytes received from the source per second, over the last ten seconds.', () => ingest.bytesPerSecond)
  gauge('jetstream_proofs_in_flight', 'Jetstream mode: record proofs being fetched from repos\' hosts.', () => ingest.proofs?.inFlight)
  counter('jetstream_proof_bytes_total', 'Jetstream mode: bytes of hosts\' answers (record proofs, listings, account states), beside the stream\'s.', () => ingest.proofs?.bytesReceived ?? 0)
  counterBy('jetstream_proof_outcomes_total', 'Jetstream mode: events settled by a record proof, by outcome (proven, superseded, forged, ...).', 'outcome', () => ingest.proofs?.outcomes ?? {})
  gauge('last_seq', 'Seq of the last relay event read (Jetstream: its time_us).', () => ingest.lastSeq)
  gauge('cursor', 'Seq of the last relay event whose effects are committed.', () => db?.cursor)
  gauge('database_up', '1 when the last scrape could read Postgres.', () => (db ? 1 : 0))

  gauge('verify_queue_depth', 'Invites waiting for a subject proof.', () => db?.queue.depth)
  gauge('verify_queue_oldest_age_seconds', 'Age of the oldest invite waiting for a subject proof.', () => db?.queue.oldestAgeSeconds)
  counterBy('verify_outcomes_total', 'Subject proofs settled, by outcome.', 'outcome', () => sources.verifier.status.outcomes)
  counterBy('verify_retries_total', 'Subject proofs retried, by reason.', 'reason', () => sources.verifier.status.retries)
  counter('verify_gave_up_total', 'Invites whose subject proof was given up.', () => sources.verifier.status.gaveUp)
  gauge('verify_in_flight', 'Subject proofs being fetched.', () => sources.verifier.status.inFlight)

  gaugeBy('backfill_runs', 'Recent and active backfill runs, by status.', 'status', () => {
    if (!db) return undefined
    const byStatus: Record<string, number> = {}
    for (const run of db.backfill.runs) byStatus[run.status] = (byStatus[run.status] ?? 0) + 1
    return byStatus
  })
  gaugeBy('backfill_repos_pending', 'Repos waiting to be synced, by source.', 'source', () =>
    db
      ? { backfill: db.backfill.runs.reduce((n, run) => n + run.repos.pending, 0), resync: db.backfill.resync.pending }
      : undefined,
  )
  gauge('repos_desynchronized', 'Tracked repos whose chain is broken until resynced.', () => db?.backfill.resync.desynchronized)
  counter('backfill_repos_synced_total', 'Repos synced from a verified snapshot.', () => sources.backfiller.status.reposSynced)
  gauge('resyncs_retrying', 'Resyncs failing for a transient reason, retried with a capped backoff.', () => db?.backfill.resync.retrying)
  counter('backfill_repos_failed_total', 'Repo syncs ended by a verdict (the repo gone from its host, or not verifying).', () => sources.backfiller.status.reposFailed)
  counter('backfill_repos_left_run_total', 'Repos that used their run\'s attempts and went on as resyncs.', () => sources.backfiller.status.reposLeftRun)
  counter('backfill_records_total', 'Records applied from repo snapshots.', () => sources.backfiller.status.records)
  gauge('backfill_in_flight', 'Repos being synced.', () => sources.backfiller.status.inFlight)

  const push = sources.push
  const perEndpoint = (read: (w: EndpointStatus) => number) => () =>
    db ? Object.fromEntries(db.webhooks.map((w) => [w.endpoint, read(w)])) : undefined
  gauge('push_subscribers', 'Subscriptions this process serves.', () => push?.subscriptions()?.connections ?? 0)
  gauge('push_feed_position', 'Last change-feed id this process has handed to its subscribers.', () => push?.fanout().position)
  gauge('push_listening', '1 while the LISTEN connection for change-feed commits is up.', () => (push?.fanout().listening ? 1 : 0))
  counter('push_frames_sent_total', 'Change frames handed to subscribers.', () => push?.fanout().framesSent ?? 0)
  counter('push_slow_consumers_total', 'Subscribers cut with ConsumerTooSlow.', () => push?.subscriptions()?.slowConsumersCut ?? 0)
  // By endpoint: its origin and a hash of its URL, whose path or query may hold a secret.
  counterBy('webhook_delivered_total', 'Changes a webhook receiver accepted (2xx), by endpoint, from Postgres (all replicas).', 'endpoint', perEndpoint((w) => w.delivered))
  counterBy('webhook_failures_total', 'Failed webhook attempts, by endpoint, from Postgres (all replicas).', 'endpoint', perEndpoint((w) => w.failures))
  gaugeBy('webhook_consecutive_failures', 'Failed attempts in a row at the next change, by endpoint.', 'endpoint', perEndpoint((w) => w.consecutiveFailures))
  gaugeBy('webhook_pending', 'Change-feed entries after the endpoint\'s position, by endpoint.', 'endpoint', perEndpoint((w) => w.pending))

  const requests = new Histogram({
    name: PREFIX + 'api_request_duration_seconds',
    help: 'API request latency, by route, method and status code.',
    labelNames: ['route', 'method', 'status_code'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  })

  const readDatabase = async (): Promise<DatabaseView | null> => {
    try {
      const [cursor, queue, backfill, webhooks] = await Promise.all([
        readCursor(sources.pool, sources.relayUrl),
        queueStats(sources.pool),
        backfillProgress(sources.pool),
        endpointStatus(sources.pool, sources.push?.webhookUrls ?? []),
      ])
      return { cursor, queue, backfill, webhooks }
    } catch {
      return null
    }
  }

  return {
    contentType: registry.contentType,
    async scrape() {
      db = await readDatabase()
      ingest = sources.indexer.snapshotStatus()
      return withoutUnknown(await registry.metrics())
    },
    observeRequest(route, method, statusCode, seconds) {
      requests.observe({ route, method, status_code: String(statusCode) }, seconds)
    },
  }
}
