import { spawn } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { startArgs } from '../../tests/support/start-command.ts'

/**
 * The service as `npm start` runs it (`tests/support/service-process.ts`'s `spawnService`), pinned
 * to `cpus` with `taskset -c` (which execs Node: the child's pid is the service's, for
 * /proc/PID/status), from `cwd` (another checkout of the project, say) when given. Of its output the start (until it listens) and the last 256 KB are kept:
 * over a long run at info level it would otherwise grow without bound.
 */
export const spawnPinnedService = (env: Record<string, string | undefined>, cpus: string, opts: { logFile?: string; cwd?: string } = {}) => {
  const { logFile, cwd } = opts
  const child = spawn('taskset', ['-c', cpus, process.execPath, ...startArgs()], {
    cwd,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let head = ''
  let tail = ''
  let address: string | null = null
  let onAddress: (a: string) => void = () => {}
  const take = (d: Buffer) => {
    if (address === null) {
      head += d.toString()
      const found = /"address":"(http:\/\/[^"]+)"/.exec(head)?.[1]
      if (found) onAddress((address = found))
      return
    }
    tail = (tail + d.toString()).slice(-256 * 1024)
  }
  child.stdout.on('data', take)
  child.stderr.on('data', take)
  if (logFile) {
    // Everything it prints, for a look at what it did (BENCH_SERVICE_LOG).
    const out = createWriteStream(logFile)
    child.stdout.pipe(out)
    child.stderr.pipe(out)
  }
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const listening = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the service did not listen within 60 s:\n${head}`)), 60_000)
    onAddress = (a) => {
      clearTimeout(timer)
      resolve(a)
    }
    void exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`the service exited ${code} before listening:\n${head}`))
    })
  })
  listening.catch(() => {})
  return { child, address: listening, exited, output: () => `${head}${tail}` }
}

/** The resident set of a process, in bytes (0 once it is gone). */
export const rssOf = async (pid: number): Promise<number> => {
  const { readFile } = await import('node:fs/promises')
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024
  } catch {
    return 0
  }
}
