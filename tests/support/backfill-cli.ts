import { spawn } from 'node:child_process'
import type { Harness } from './harness.ts'

/**
 * Runs `npm run backfill -- <args>` as an operator would, against a harness's database; `plcUrl`
 * when the operator's machine resolves DIDs elsewhere than the service.
 */
export const runBackfillCli = (h: Harness, args: string[], plcUrl = h.config.plcUrl) =>
  new Promise<{ code: number | null; output: string }>((resolve) => {
    const child = spawn(process.execPath, ['src/cli.ts', 'backfill', ...args], {
      env: {
        ...process.env,
        DATABASE_URL: h.config.databaseUrl,
        DATABASE_SCHEMA: h.config.databaseSchema,
        RELAY_URL: h.config.relayUrl,
        BACKFILL_URL: h.config.backfill.url,
        PLC_URL: plcUrl,
        ALLOW_PRIVATE_NETWORK: 'true',
        LOG_LEVEL: process.env.CLI_LOG_LEVEL ?? 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (d: Buffer) => (output += d.toString()))
    child.stderr.on('data', (d: Buffer) => (output += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })
