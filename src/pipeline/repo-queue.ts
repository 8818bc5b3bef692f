/**
 * Per-repo queues. The invariant kept here: **one repo's events are processed one at a time, in
 * the order they were read; different repos go independently.** A repo whose event fails for a
 * reason that says nothing about the event (identity, PDS or database trouble) is *parked*: the
 * event stays at the head, the repo's later events wait behind it, and it is retried with capped,
 * jittered backoff while other repos go on. A parked repo holds bounded memory: past its share
 * (events, bytes, or time parked) its queue is handed to `onOverflow`, which marks the repo
 * desynchronized and has it resynced from its PDS; nothing is dropped silently.
 */
import { TransientError } from '../lib/transient.ts'
import { backoff, TIMER_MAX_MS } from '../lib/backoff.ts'

export interface QueuedJob {
  /** Approximate memory held (the frame's size). */
  bytes: number
}

export interface RepoQueueOptions<J extends QueuedJob> {
  /** Repos being processed at once. */
  concurrency: number
  /** Events one repo may hold while parked before it is handed to a resync. */
  maxPerRepo: number
  /** Bytes all queues may hold; past it the most loaded parked repo is handed to a resync. */
  maxBytes: number
  /** Longest a repo stays parked before it is handed to a resync. */
  maxParkMs: number
  baseBackoffMs: number
  maxBackoffMs: number
  process: (did: string, job: J) => Promise<void>
  /** The repo's queued jobs, given up to a resync; each must still be accounted for. */
  onOverflow: (did: string, jobs: J[], reason: string) => void
  /** A job failed and its repo is parked. */
  onPark: (did: string, err: unknown, attempt: number, retryInMs: number) => void
}

interface Repo<J> {
  did: string
  jobs: J[]
  head: number
  bytes: number
  running: boolean
  parkedSince: number | null
  attempts: number
  timer: NodeJS.Timeout | null
}

export class RepoQueues<J extends QueuedJob> {
  private readonly repos = new Map<string, Repo<J>>()
  private readonly ready: Repo<J>[] = []
  private readyHead = 0
  private running = 0
  private stopped = false
  private idleWaiters: (() => void)[] = []
  private roomWaiters: (() => void)[] = []
  /** Bytes held by queued jobs. */
  bytes = 0
  /** Jobs queued (running ones included). */
  jobs = 0
  parked = 0
  /** Bytes held by parked repos: they wait on a retry, not on the processing. */
  parkedBytes = 0

  private readonly opts: RepoQueueOptions<J>

  constructor(opts: RepoQueueOptions<J>) {
    this.opts = opts
  }

  /** Repos ready to run but not started: work the reader's next commit should not leave behind. */
  get waiting(): number {
    return this.ready.length - this.readyHead
  }

  /** Whether the repo has jobs queued or running: its next event must wait behind them. */
  has(did: string): boolean {
    return this.repos.has(did)
  }

  push(did: string, job: J): void {
    let repo = this.repos.get(did)
    if (!repo) {
      repo = { did, jobs: [], head: 0, bytes: 0, running: false, parkedSince: null, attempts: 0, timer: null }
      this.repos.set(did, repo)
    }
    repo.jobs.push(job)
    repo.bytes += job.bytes
    this.bytes += job.bytes
    this.jobs++
    if (repo.parkedSince !== null) {
      this.parkedBytes += job.bytes
      if (repo.jobs.length - repo.head > this.opts.maxPerRepo) this.overflow(repo, `more than ${this.opts.maxPerRepo} events waiting`)
    } else if (!repo.running && repo.jobs.length - repo.head === 1) {
      this.ready.push(repo)
      this.pump()
    }
    if (this.bytes > this.opts.maxBytes) this.shed()
  }

  /** Bytes of jobs waiting to be processed (parked repos' aside). */
  get activeBytes(): number {
    return this.bytes - this.parkedBytes
  }

  /** Resolves when the active bytes are below `limit` (back-pressure for the reader). */
  room(limit: number): Promise<void> {
    if (this.activeBytes <= limit || this.stopped) return Promise.resolve()
    return new Promise((resolve) => this.roomWaiters.push(resolve))
  }

  /** Resolves when no job is running (parked repos are not waited for). */
  idle(): Promise<void> {
    if (this.running === 0) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  /** Starts no more jobs; running ones finish. Queued jobs are forgotten (the cursor never passed them). */
  stop(): void {
    this.stopped = true
    for (const repo of this.repos.values()) if (repo.timer) clearTimeout(repo.timer)
    for (const w of this.roomWaiters.splice(0)) w()
  }

  reset(): void {
    this.stop()
    this.repos.clear()
    this.ready.length = 0
    this.readyHead = 0
    this.bytes = 0
    this.jobs = 0
    this.parked = 0
    this.parkedBytes = 0
    this.stopped = false
  }

  /** Parked repos' queues are handed over at once when they have been parked past the limit. */
  sweep(now = Date.now()): void {
    for (const repo of this.repos.values()) {
      if (repo.parkedSince !== null && now - repo.parkedSince > this.opts.maxParkMs) {
        this.overflow(repo, `parked for more than ${Math.round(this.opts.maxParkMs / 1000)} s`)
      }
    }
  }

  private pump(): void {
    while (!this.stopped && this.running < this.opts.concurrency && this.readyHead < this.ready.length) {
      const repo = this.ready[this.readyHead++] as Repo<J>
      if (this.readyHead > 1024 && this.readyHead * 2 > this.ready.length) {
        this.ready.splice(0, this.readyHead)
        this.readyHead = 0
      }
      void this.run(repo)
    }
  }

  private async run(repo: Repo<J>): Promise<void> {
    repo.running = true
    this.running++
    try {
      while (!this.stopped && repo.head < repo.jobs.length) {
        const job = repo.jobs[repo.head] as J
        try {
          await this.opts.process(repo.did, job)
        } catch (err) {
          this.park(repo, err)
          return
        }
        this.take(repo)
        if (repo.parkedSince !== null) {
          repo.parkedSince = null
          repo.attempts = 0
          this.parked--
          this.parkedBytes -= repo.bytes
        }
      }
      if (repo.head >= repo.jobs.length) this.repos.delete(repo.did)
    } finally {
      repo.running = false
      this.running--
      if (this.running === 0) for (const w of this.idleWaiters.splice(0)) w()
      this.pump()
    }
  }

  private take(repo: Repo<J>): void {
    const job = repo.jobs[repo.head] as J
    repo.jobs[repo.head] = undefined as unknown as J
    repo.head++
    if (repo.head > 64 && repo.head * 2 > repo.jobs.length) {
      repo.jobs = repo.jobs.slice(repo.head)
      repo.head = 0
    }
    repo.bytes -= job.bytes
    this.bytes -= job.bytes
    if (repo.parkedSince !== null) this.parkedBytes -= job.bytes
    this.jobs--
    if (this.roomWaiters.length > 0) for (const w of this.roomWaiters.splice(0)) w()
  }

  private park(repo: Repo<J>, err: unknown): void {
    if (repo.parkedSince === null) {
      repo.parkedSince = Date.now()
      this.parked++
      this.parkedBytes += repo.bytes
    }
    repo.attempts++
    const hinted = err instanceof TransientError ? err.retryAfterMs : undefined
    // The host's Retry-After outranks our cap (it comes bounded from the host client).
    const delay = Math.min(TIMER_MAX_MS, Math.max(hinted ?? 0, backoff(repo.attempts, this.opts.baseBackoffMs, this.opts.maxBackoffMs)))
    const retry = () => {
      repo.timer = null
      if (this.stopped || this.repos.get(repo.did) !== repo || repo.running) return
      this.ready.push(repo)
      this.pump()
    }
    const ready = err instanceof TransientError ? err.ready : undefined
    if (ready) {
      // The failure says when to come back (a DID document being fetched): at once if that
      // succeeds, after the usual backoff if it fails. The repo holds no slot meanwhile.
      void ready.then((ok) => {
        if (ok) retry()
        else repo.timer = setTimeout(retry, delay)
      })
      this.opts.onPark(repo.did, err, repo.attempts, 0)
      return
    }
    this.opts.onPark(repo.did, err, repo.attempts, delay)
    repo.timer = setTimeout(retry, delay)
  }

  /** Hands a parked repo's queued jobs over (to a resync); the repo starts afresh. */
  private overflow(repo: Repo<J>, reason: string): void {
    if (repo.running) return
    if (repo.timer) clearTimeout(repo.timer)
    const jobs = repo.jobs.slice(repo.head)
    this.repos.delete(repo.did)
    this.bytes -= repo.bytes
    this.jobs -= jobs.length
    if (repo.parkedSince !== null) {
      this.parked--
      this.parkedBytes -= repo.bytes
    }
    this.opts.onOverflow(repo.did, jobs, reason)
    if (this.roomWaiters.length > 0) for (const w of this.roomWaiters.splice(0)) w()
  }

  private shed(): void {
    let worst: Repo<J> | null = null
    for (const repo of this.repos.values()) {
      if (repo.parkedSince !== null && !repo.running && (!worst || repo.bytes > worst.bytes)) worst = repo
    }
    if (worst) this.overflow(worst, 'its waiting events took more than their share of memory')
  }
}
