import pg from 'pg'

export type Pool = pg.Pool
export type PoolClient = pg.PoolClient

// int8 columns (seqs, counts) fit in a JS number for any realistic relay.
pg.types.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v))

/**
 * `statementTimeoutMs`: a statement running longer is cancelled by the server (the API's pool,
 * so that no request can hold a connection, or load the database, for long).
 */
export const createPool = (url: string, schema: string, max = 10, statementTimeoutMs?: number): Pool => {
  const pool = new pg.Pool({
    connectionString: url,
    max,
    connectionTimeoutMillis: 10_000,
    options: `-c search_path=${schema}${statementTimeoutMs === undefined ? '' : ` -c statement_timeout=${Math.floor(statementTimeoutMs)}`}`,
  })
  // A client that loses its server (restart, failover) must not crash the process: idle ones
  // report on the pool, checked-out ones on themselves; their queries fail and are retried.
  pool.on('error', () => {})
  pool.on('connect', (client) => client.on('error', () => {}))
  return pool
}
