import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

export interface LocalNetwork {
  plcUrl: string
  pdsUrl: string
  adminPassword: string
  close(): Promise<void>
}

/**
 * A real PLC directory and PDS on loopback (`@atproto/dev-env`). The PDS finds new events by
 * polling its database, backing off up to a second when idle (a relay pushes them): the backoff
 * is capped at `sequencerIdleMs` (20 ms by default) so events reach the firehose promptly.
 */
export const startLocalNetwork = async (opts: { sequencerIdleMs?: number } = {}): Promise<LocalNetwork> => {
  const idleCap = opts.sequencerIdleMs ?? 20
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'collab-test-net-'))
  const savedTmp = process.env.TMPDIR
  // dev-env leaves its data directories under os.tmpdir(): give it one we remove.
  process.env.TMPDIR = tmp
  const { TestPlc, TestPds } = await import('@atproto/dev-env')
  const plc = await TestPlc.create({})
  let pds: Awaited<ReturnType<typeof TestPds.create>>
  try {
    pds = await TestPds.create({ didPlcUrl: plc.url, inviteRequired: false })
  } catch (err) {
    await plc.close()
    throw err
  } finally {
    if (savedTmp === undefined) delete process.env.TMPDIR
    else process.env.TMPDIR = savedTmp
  }
  const sequencer = pds.ctx.sequencer as unknown as { triesWithNoResults: number; exponentialBackoff: () => Promise<void> }
  sequencer.exponentialBackoff = async function (this: typeof sequencer) {
    this.triesWithNoResults++
    await new Promise((r) => setTimeout(r, Math.min(2 ** this.triesWithNoResults, idleCap)))
  }
  return {
    plcUrl: plc.url,
    pdsUrl: pds.url,
    adminPassword: 'admin-pass',
    async close() {
      await pds.close()
      await plc.close()
      await rm(tmp, { recursive: true, force: true })
    },
  }
}
