import { loadConfig, type Config } from '../../src/config.ts'

/**
 * The service's configuration for a benchmark on a local network, read the way `npm start` reads
 * it: from the environment, with defaults for everything not set here.
 */
export const benchConfig = (net: { pdsUrl: string; plcUrl: string }, databaseUrl: string, serviceDid: string): Config => {
  Object.assign(process.env, {
    DATABASE_URL: databaseUrl,
    DATABASE_SCHEMA: `bench_${Date.now()}`,
    RELAY_URL: net.pdsUrl,
    PLC_URL: net.plcUrl,
    PORT: '0',
    HOST: '127.0.0.1',
    SERVICE_DID: serviceDid,
    LOG_LEVEL: 'silent',
    BACKFILL_ON_GAP: 'false',
    // Load generators poll as fast as the API answers.
    RATE_LIMIT_MAX: '0',
  })
  delete process.env.START_CURSOR
  return loadConfig()
}
