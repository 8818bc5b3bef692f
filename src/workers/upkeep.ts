import type { Logger } from '../lib/log.ts'
import type { Pool } from '../db/pool.ts'
import { recordExpiries, runUpkeep, type UpkeepResult } from '../db/retention.ts'

/**
 * Runs the retention and expiry upkeep at start and then every `intervalMs`, and records expiries
 * alone every `expiryIntervalMs` (an expiry is pushed to the invite's parties when recorded).
 * Every replica runs it, leader or not, each job one at a time per schema by an advisory lock it
 * waits for (so colliding jobs run one after the other, none is skipped): its writes follow from
 * the clock and the stored rows, not from what a leader read, so they are not fenced.
 */
export class Upkeep {
  private readonly pool: Pool
  private readonly days: number
  private readonly intervalMs: number
  private readonly expiryIntervalMs: number
  private readonly log: Logger
  private timer: NodeJS.Timeout | null = null
  private expiryTimer: NodeJS.Timeout | null = null
  private running: Promise<unknown> = Promise.resolve()
  private expiring: Promise<unknown> = Promise.resolve()

  constructor(opts: { pool: Pool; days: number; intervalMs: number; expiryIntervalMs?: number; log: Logger }) {
    this.pool = opts.pool
    this.days = opts.days
    this.intervalMs = opts.intervalMs
    this.expiryIntervalMs = opts.expiryIntervalMs ?? opts.intervalMs
    this.log = opts.log
  }

  start(): void {
    const tick = () => {
      // A run that outlasts the interval is followed by the next, not overlapped.
      this.running = this.running.then(() => this.run()).catch((err: unknown) => this.log.error({ err }, 'upkeep failed; next try at the next interval'))
    }
    tick()
    this.timer = setInterval(tick, this.intervalMs)
    this.timer.unref()
    this.expiryTimer = setInterval(() => {
      this.expiring = this.expiring
        .then(() => recordExpiries(this.pool))
        .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'recording expiries failed; next try at the next interval'))
    }, this.expiryIntervalMs)
    this.expiryTimer.unref()
  }

  async run(): Promise<UpkeepResult> {
    const result = await runUpkeep(this.pool, this.days)
    if (result.expired + result.tombstones + result.rejections + result.changes > 0) this.log.info(result, 'upkeep done')
    return result
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    if (this.expiryTimer) clearInterval(this.expiryTimer)
    this.timer = null
    this.expiryTimer = null
    await Promise.all([this.running, this.expiring])
  }
}
