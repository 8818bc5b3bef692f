/**
 * The setting of the write -> visible benchmarks (freshness, push): a local network (PDS + PLC),
 * a Postgres, an inviter and an invitee, and a subscriber of the PDS's firehose that notes when
 * each record's commit reached it, so a latency can be split at the firehose.
 */
import { WebSocket } from 'ws'
import { normaliseRelayUrl } from '../../src/config.ts'
import { decodeFrame } from '../../src/sources/firehose-frame.ts'
import { startLocalNetwork } from '../../tests/support/network.ts'
import { testPostgres } from '../../tests/support/postgres.ts'
import { createAccount } from './corpus.ts'

/** The audience the benchmarks' services take tokens for. */
export const BENCH_SERVICE_DID = 'did:web:bench.test'

export const startWriteBench = async () => {
  const db = await testPostgres()
  // A relay pushes each event as it comes; the dev-env PDS polls for them. A 2 ms cap keeps that
  // poll from being what is measured.
  const net = await startLocalNetwork({ sequencerIdleMs: 2 })
  const inviter = await createAccount(net.pdsUrl, 'inv')
  const invitee = await createAccount(net.pdsUrl, 'ee')
  const create = async (collection: string, record: Record<string, unknown>) =>
    (await inviter.agent.com.atproto.repo.createRecord({ repo: inviter.did, collection, record: { $type: collection, ...record } })).data
  // When each record's commit reached the PDS's firehose, by AT-URI.
  const onFirehose = new Map<string, number>()
  const watcher = new WebSocket(`${normaliseRelayUrl(net.pdsUrl)}/xrpc/com.atproto.sync.subscribeRepos`)
  watcher.on('message', (data: Buffer) => {
    const at = performance.now()
    const evt = decodeFrame(new Uint8Array(data))
    if (evt.type === 'commit') for (const op of evt.ops) onFirehose.set(`at://${evt.repo}/${op.path}`, at)
  })
  await new Promise((r) => watcher.once('open', r))
  return {
    db,
    net,
    inviter,
    invitee,
    create,
    onFirehose,
    /** A service of this network as `npm start` runs it: a schema of its own, a live reader of the PDS. */
    serviceEnv: (schema: string): Record<string, string> => ({
      DATABASE_URL: db.url,
      DATABASE_SCHEMA: schema,
      RELAY_URL: net.pdsUrl,
      PLC_URL: net.plcUrl,
      ALLOW_PRIVATE_NETWORK: 'true',
      SERVICE_DID: BENCH_SERVICE_DID,
      LOG_LEVEL: 'info',
      BACKFILL_ON_GAP: 'false',
      RATE_LIMIT_MAX: '0',
    }),
    async close() {
      watcher.terminate()
      await net.close()
      await db.stop()
    },
  }
}
