import pg from 'pg'

/**
 * Ingest leadership among replicas sharing one database: a session-level advisory lock held on
 * a connection of its own. Postgres releases it when that session ends, so a replica that dies
 * (even by SIGKILL) or loses the database hands leadership on by itself.
 */
export class LeaderLock {
  private client: pg.Client | null = null
  private readonly url: string
  private readonly name: string
  private readonly onLost: (err: Error) => void

  constructor(url: string, name: string, onLost: (err: Error) => void) {
    this.url = url
    this.name = name
    this.onLost = onLost
  }

  get held(): boolean {
    return this.client !== null
  }

  async tryAcquire(): Promise<boolean> {
    if (this.client) return true
    const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 5000 })
    let lost = false
    const lose = (err: Error) => {
      if (lost) return
      lost = true
      if (this.client === client) {
        this.client = null
        this.onLost(err)
      }
    }
    client.on('error', lose)
    client.on('end', () => lose(new Error('leader connection ended')))
    try {
      await client.connect()
      const res = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS locked', [this.name])
      if (res.rows[0]?.locked) {
        this.client = client
        return true
      }
    } catch {
      // The database is away: not the leader, try again later.
    }
    lost = true
    await client.end().catch(() => {})
    return false
  }

  async release(): Promise<void> {
    const client = this.client
    this.client = null
    if (!client) return
    await client.query('SELECT pg_advisory_unlock(hashtext($1))', [this.name]).catch(() => {})
    await client.end().catch(() => {})
  }
}
