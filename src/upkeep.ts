import type { Logger } from './log.ts'
import type { Pool } from './db/pool.ts'
import { runUpkeep, type UpkeepResult } from './db/retention.ts'

/** Runs the retention and expiry upkeep at start and then every `intervalMs`. */
export class Upkeep {
  private readonly pool: Pool
  private readonly days: number
  private readonly intervalMs: number
  private readonly log: Logger
  private timer: NodeJS.Timeout | null = null
  private running: Promise<unknown> = Promise.resolve()

  constructor(opts: { pool: Pool; days: number; intervalMs: number; log: Logger }) {
    this.pool = opts.pool
    this.days = opts.days
    this.intervalMs = opts.intervalMs
    this.log = opts.log
  }

  start(): void {
    const tick = () => {
      this.running = this.run().catch((err: unknown) => this.log.error({ err }, 'upkeep failed; next try at the next interval'))
    }
    tick()
    this.timer = setInterval(tick, this.intervalMs)
    this.timer.unref()
  }

  async run(): Promise<UpkeepResult> {
    const result = await runUpkeep(this.pool, this.days)
    if (result.expired + result.tombstones + result.rejections + result.changes > 0) this.log.info(result, 'upkeep done')
    return result
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    await this.running
  }
}
