import { spawn, type ChildProcessByStdio } from 'node:child_process'
import type { Readable } from 'node:stream'
import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { testConfig, waitFor } from './harness.ts'
import { freePort } from './postgres.ts'
import { startArgs } from './start-command.ts'

/**
 * Starts the service as `npm start` does (in `cwd`, by default here), in a child process that
 * the caller may signal; `address` resolves once the API listens.
 */
export const spawnService = (env: Record<string, string | undefined>, cwd?: string) =>
  watchService(spawn(process.execPath, startArgs(), { cwd, env: serviceEnv(env), stdio: ['ignore', 'pipe', 'pipe'] }), 30_000)

// The local network's PLC and PDS are on loopback: allowed only when said (as an operator would).
const serviceEnv = (env: Record<string, string | undefined>) => ({ ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ALLOW_PRIVATE_NETWORK: 'true', ...env })

/** The child's output, its exit, and the address it says it listens on. */
const watchService = (child: ChildProcessByStdio<null, Readable, Readable>, listenTimeoutMs: number) => {
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr.on('data', (d: Buffer) => (output += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const address = waitFor(async () => /"address":"(http:\/\/[^"]+)"/.exec(output)?.[1], 'the service to listen', listenTimeoutMs)
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

/** PIDs of the live processes in process group `pgid` (zombies excluded), from /proc. */
export const processGroup = (pgid: number): number[] => {
  const pids: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(pgrp) === pgid && state !== 'Z') pids.push(Number(entry))
    } catch {
      // gone meanwhile
    }
  }
  return pids
}

/**
 * Runs `npm start` itself, as an operator or a supervisor does (npm, then /bin/sh, then node),
 * in a process group of its own so that a test can signal npm alone and then see what is left
 * of the whole tree.
 */
export const spawnNpmStart = (env: Record<string, string | undefined>, cwd = fileURLToPath(new URL('../..', import.meta.url))) => {
  const svc = watchService(spawn('npm', ['start'], { cwd, detached: true, env: serviceEnv(env), stdio: ['ignore', 'pipe', 'pipe'] }), 60_000)
  const pgid = svc.child.pid as number
  return {
    ...svc,
    pgid,
    /** Whatever survives a failed test must not outlive it. */
    killGroup: () => {
      try {
        process.kill(-pgid, 'SIGKILL')
      } catch {
        // already gone
      }
    },
  }
}

/**
 * The environment of a service on an embedded Postgres of its own (no DATABASE_URL), under a
 * fresh DATA_DIR that Postgres (run as `postgres` when we are root) can reach, reading the local PDS.
 */
export const embeddedServiceEnv = async (prefix: string) => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), prefix))
  await chmod(dataDir, 0o755)
  const port = await freePort()
  return {
    dataDir,
    port,
    env: {
      DATABASE_URL: undefined,
      DATA_DIR: dataDir,
      EMBEDDED_PG_PORT: String(port),
      RELAY_URL: testConfig('x').relayUrl,
      PLC_URL: testConfig('x').plcUrl,
      START_CURSOR: '0',
    },
    remove: () => rm(dataDir, { recursive: true, force: true }),
  }
}
