import { spawn } from 'node:child_process'
import { waitFor } from './harness.ts'
import { startArgs } from './start-command.ts'

/**
 * Starts the service as `npm start` does (in `cwd`, by default here), in a child process that
 * the caller may signal; `address` resolves once the API listens.
 */
export const spawnService = (env: Record<string, string | undefined>, cwd?: string) => {
  const child = spawn(process.execPath, startArgs(), {
    cwd,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr.on('data', (d: Buffer) => (output += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const address = waitFor(async () => /"address":"(http:\/\/[^"]+)"/.exec(output)?.[1], 'the service to listen', 30_000)
  // A caller that gives up before the service listens must not leave a rejection unhandled.
  address.catch(() => {})
  return { child, address, exited, output: () => output }
}

/**
 * Runs the service until `whileUp` is done, then SIGTERM; returns the exit code, how long it
 * took to stop, and everything it printed.
 */
export const runService = async (
  env: Record<string, string | undefined>,
  whileUp: (address: string) => Promise<void>,
  cwd?: string,
) => {
  const svc = spawnService(env, cwd)
  try {
    await whileUp(await svc.address)
    const started = Date.now()
    svc.child.kill('SIGTERM')
    const code = await svc.exited
    return { code, stopMs: Date.now() - started, output: svc.output() }
  } finally {
    svc.child.kill('SIGKILL')
  }
}
