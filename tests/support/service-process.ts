import { spawn } from 'node:child_process'
import { waitFor } from './harness.ts'
import { startArgs } from './start-command.ts'

/**
 * Runs the service as `npm start` does (in `cwd`, by default here), until SIGTERM; returns
 * the exit code, how long it took to stop, and everything it printed.
 */
export const runService = async (
  env: Record<string, string | undefined>,
  whileUp: (address: string) => Promise<void>,
  cwd?: string,
) => {
  const child = spawn(process.execPath, startArgs(), {
    cwd,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr.on('data', (d: Buffer) => (output += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  try {
    const address = await waitFor(async () => /"address":"(http:\/\/[^"]+)"/.exec(output)?.[1], 'the service to listen', 30_000)
    await whileUp(address)
    const started = Date.now()
    child.kill('SIGTERM')
    const code = await exited
    return { code, stopMs: Date.now() - started, output }
  } finally {
    child.kill('SIGKILL')
  }
}
