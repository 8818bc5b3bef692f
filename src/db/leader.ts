import pg from 'pg'

/** The lock connection's `application_name`: how operators (and the tests' proxy) tell it apart. */
export const LEADER_APPLICATION_NAME = 'chive-collab-indexer:leader-lock'

export interface LeaderLockOptions {
  /** Schema of the service's tables (for the epoch). */
  schema: string
  /** How often the lock connection is proven alive; a check that takes longer fails. */
  checkIntervalMs: number
}

/**
 * Ingest leadership among replicas sharing one database: a session-level advisory lock held on
 * a connection of its own. Postgres releases it when that session ends, so a replica that dies
 * (even by SIGKILL) or loses the database hands leadership on by itself.
 *
 * A connection can also vanish silently (a NAT or firewall drops its state, the server's side is
 * reset): Postgres ends the session and another replica takes the lock, while this one hears
 * nothing. Two defences: TCP keepalive and a periodic query on the lock connection (a check that
 * fails or hangs drops leadership), and, since those take time, a fencing epoch taken with the
 * lock and checked in every ingest transaction (src/db/store.ts), so that nothing a deposed
 * leader writes in between can land.
 */
export class LeaderLock {
  private client: pg.Client | null = null
  private timer: NodeJS.Timeout | null = null
  private currentEpoch: number | null = null
  private readonly url: string
  private readonly name: string
  private readonly onLost: (err: Error) => void
  private readonly opts: LeaderLockOptions

  constructor(url: string, name: string, onLost: (err: Error) => void, opts: LeaderLockOptions) {
    this.url = url
    this.name = name
    this.onLost = onLost
    this.opts = opts
  }

  get held(): boolean {
    return this.client !== null
  }

  /** The epoch this replica leads in; null when it does not lead. */
  get epoch(): number | null {
    return this.currentEpoch
  }

  async tryAcquire(): Promise<boolean> {
    if (this.client) return true
    const client = new pg.Client({
      connectionString: this.url,
      connectionTimeoutMillis: 5000,
      keepAlive: true,
      keepAliveInitialDelayMillis: Math.max(1000, this.opts.checkIntervalMs),
      application_name: LEADER_APPLICATION_NAME,
      options: `-c search_path=${this.opts.schema}`,
    })
    let acquired = false
    client.on('error', (err) => this.lose(client, err))
    client.on('end', () => this.lose(client, new Error('leader connection ended')))
    try {
      await client.connect()
      const res = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS locked', [this.name])
      if (res.rows[0]?.locked) {
        // Moved on before any ingest starts: from here on, the previous leader's batches fail.
        const epoch = await client.query<{ epoch: number }>(
          `INSERT INTO leader_epoch (id, epoch) VALUES (true, 1)
           ON CONFLICT (id) DO UPDATE SET epoch = leader_epoch.epoch + 1, acquired_at = now()
           RETURNING epoch`,
        )
        this.currentEpoch = Number(epoch.rows[0]?.epoch)
        this.client = client
        acquired = true
        this.timer = setInterval(() => void this.check(client), this.opts.checkIntervalMs)
        return true
      }
    } catch {
      // The database is away: not the leader, try again later.
    } finally {
      if (!acquired) await client.end().catch(() => {})
    }
    return false
  }

  /** Told by the ingest transaction that the epoch moved on: another replica leads now. */
  deposed(err: Error): void {
    if (this.client) this.lose(this.client, err)
  }

  /** The session is alive and still ours: the epoch is the one taken with the lock. */
  private checking = false
  private async check(client: pg.Client): Promise<void> {
    if (this.checking || this.client !== client) return
    this.checking = true
    let timeout: NodeJS.Timeout | undefined
    try {
      const res = await Promise.race([
        client.query<{ epoch: number }>('SELECT epoch FROM leader_epoch'),
        new Promise<never>((_, reject) => {
          timeout = setTimeout(() => reject(new Error(`leader connection check took over ${this.opts.checkIntervalMs} ms`)), this.opts.checkIntervalMs)
        }),
      ])
      if (Number(res.rows[0]?.epoch) !== this.currentEpoch) throw new Error('the leader epoch moved on: another replica took over')
    } catch (err) {
      this.lose(client, err as Error)
    } finally {
      clearTimeout(timeout)
      this.checking = false
    }
  }

  private lose(client: pg.Client, err: Error): void {
    if (this.client !== client) return
    this.client = null
    this.currentEpoch = null
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    // Not awaited: on a connection that went silent, ending it may never complete.
    void client.end().catch(() => {})
    this.onLost(err)
  }

  async release(): Promise<void> {
    const client = this.client
    this.client = null
    this.currentEpoch = null
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    if (!client) return
    await client.query('SELECT pg_advisory_unlock(hashtext($1))', [this.name]).catch(() => {})
    await client.end().catch(() => {})
  }
}
