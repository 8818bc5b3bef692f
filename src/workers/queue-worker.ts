import type { Logger } from '../lib/log.ts'
import { TransientError } from '../atproto/host.ts'

/** A failed task's error as a retryable one; anything unexpected counts as an internal error. */
export const asTransient = (err: unknown): TransientError =>
  err instanceof TransientError ? err : new TransientError('internal-error', String(err))

/**
 * A worker over a queue in Postgres: it runs rounds of `step()` while there is work, sleeps
 * `pollMs` (or until woken) when there is none, and on stop lets the tasks in flight finish.
 */
export abstract class QueueWorker {
  protected stopping = false
  protected readonly running = new Set<Promise<void>>()
  private wakeUp: (() => void) | null = null
  /** A wake that came while a round ran: the next round starts without sleeping. */
  private woken = false
  private done: Promise<void> | null = null
  private readonly pollMs: number
  private readonly workerLog: Logger

  constructor(pollMs: number, log: Logger) {
    this.pollMs = pollMs
    this.workerLog = log
  }

  /** One round of work; true when there may be more right away. */
  protected abstract step(): Promise<boolean>

  /** Told whenever the number of tasks in flight changes. */
  protected inFlightChanged(_count: number): void {}

  /** Starts (or, after stop, restarts) the worker. */
  start(): void {
    this.stopping = false
    this.done = this.loop()
  }

  /** New work was queued: look now rather than at the next poll. */
  wake(): void {
    if (this.wakeUp) this.wakeUp()
    else this.woken = true
  }

  async stop(): Promise<void> {
    this.stopping = true
    this.wake()
    await this.done
  }

  protected track(task: Promise<void>): void {
    this.running.add(task)
    this.inFlightChanged(this.running.size)
    void task.finally(() => {
      this.running.delete(task)
      this.inFlightChanged(this.running.size)
      this.wake()
    })
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      this.woken = false
      let busy = false
      try {
        busy = await this.step()
      } catch (err) {
        this.workerLog.error({ err }, 'worker round failed')
      }
      if (busy || this.woken || this.stopping) continue
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.pollMs)
        this.wakeUp = () => {
          clearTimeout(timer)
          this.wakeUp = null
          resolve()
        }
      })
    }
    await Promise.allSettled(this.running)
  }
}
