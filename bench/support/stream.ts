import { WebSocketServer } from 'ws'

/** One unmasked binary WebSocket message (server to client) carrying `payload`. */
const wsMessage = (payload: Uint8Array): Buffer => {
  const n = payload.length
  const header = n < 126 ? Buffer.from([0x82, n]) : n < 65536 ? Buffer.alloc(4) : Buffer.alloc(10)
  if (n >= 126 && n < 65536) {
    header[0] = 0x82
    header[1] = 126
    header.writeUInt16BE(n, 2)
  } else if (n >= 65536) {
    header[0] = 0x82
    header[1] = 127
    header.writeBigUInt64BE(BigInt(n), 2)
  }
  return Buffer.concat([header, payload])
}

/**
 * Serves the frames to each subscriber as fast as its socket drains. The WebSocket messages are
 * framed once, up front, and written to the socket in 1 MB chunks: the relay must not be what
 * is measured.
 */
export const serveFrames = async (frames: readonly Uint8Array[], onConnection?: () => void, onSent?: (frames: number) => void) => {
  const chunks: Buffer[] = []
  /** Frames written once chunk i is: progress for `onSent`. */
  const ends: number[] = []
  for (let i = 0; i < frames.length; ) {
    const batch: Buffer[] = []
    let bytes = 0
    while (i < frames.length && bytes < 1 << 20) {
      const m = wsMessage(frames[i++] as Uint8Array)
      batch.push(m)
      bytes += m.length
    }
    chunks.push(Buffer.concat(batch))
    ends.push(i)
  }
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/xrpc/com.atproto.sync.subscribeRepos' })
  await new Promise<void>((r) => wss.once('listening', () => r()))
  wss.on('connection', (ws) => {
    onConnection?.()
    const socket = (ws as unknown as { _socket: import('node:net').Socket })._socket
    let i = 0
    const pump = () => {
      while (i < chunks.length && !socket.destroyed) {
        const more = socket.write(chunks[i] as Buffer)
        onSent?.(ends[i++] as number)
        if (!more) {
          socket.once('drain', pump)
          return
        }
      }
    }
    pump()
  })
  return {
    url: `ws://127.0.0.1:${(wss.address() as { port: number }).port}`,
    close: () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate()
        wss.close(() => r())
      }),
  }
}

/** Writes frames, each with a 4-byte length before it, to `file` (in pieces: any total size). */
export const writeFramesFile = async (frames: readonly Uint8Array[], file: string): Promise<void> => {
  const { openSync, writeSync, closeSync } = await import('node:fs')
  const fd = openSync(file, 'w')
  try {
    const piece = Buffer.allocUnsafe(8 << 20)
    let at = 0
    const flush = () => {
      for (let done = 0; done < at; ) done += writeSync(fd, piece, done, at - done)
      at = 0
    }
    for (const f of frames) {
      if (at + 4 + f.length > piece.length) flush()
      if (4 + f.length > piece.length) {
        const len = Buffer.alloc(4)
        len.writeUInt32BE(f.length)
        writeSync(fd, len)
        for (let done = 0; done < f.length; ) done += writeSync(fd, f, done, f.length - done)
        continue
      }
      piece.writeUInt32BE(f.length, at)
      piece.set(f, at + 4)
      at += 4 + f.length
    }
    flush()
  } finally {
    closeSync(fd)
  }
}

export interface RelayOptions {
  /** CPUs the relay process is pinned to (`taskset -c`), e.g. '1': off the consumer's core. */
  cpus?: string
}

/**
 * Starts `relay-process.ts` on the frames (or on a file of them from `writeFramesFile`, which is
 * then left in place); resolves with its URL and a stop function.
 */
export const spawnRelay = async (source: readonly Uint8Array[] | { file: string }, opts: RelayOptions = {}) => {
  const { spawn } = await import('node:child_process')
  const { mkdtempSync, rmSync } = await import('node:fs')
  const os = await import('node:os')
  const path = await import('node:path')
  let dir: string | null = null
  let file: string
  if ('file' in source) file = source.file
  else {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bench-relay-'))
    file = path.join(dir, 'frames.bin')
    await writeFramesFile(source, file)
  }
  const script = new URL('./relay-process.ts', import.meta.url).pathname
  const [command, args] = opts.cpus ? ['taskset', ['-c', opts.cpus, process.execPath, script, file]] : [process.execPath, [script, file]]
  const child = spawn(command as string, args as string[], { stdio: ['ignore', 'pipe', 'inherit'] })
  // The relay prints its URL, then a line as each subscriber connects, and `sent N` as it goes.
  let connectedAt: number | null = null
  let sent = 0
  let onConnect: (at: number) => void = () => {}
  const url = await new Promise<string>((resolve, reject) => {
    let url: string | null = null
    child.stdout.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n').filter(Boolean)) {
        if (url === null) resolve((url = line.trim()))
        else if (line.startsWith('connected') && connectedAt === null) onConnect((connectedAt = performance.now()))
        else if (line.startsWith('sent ')) sent = Number(line.slice(5))
      }
    })
    child.once('exit', (code) => reject(new Error(`relay process exited ${code}`)))
  })
  return {
    url,
    /** When the first subscriber connected (its first frame is on the way): where timing starts. */
    firstConnection: (): Promise<number> =>
      connectedAt !== null ? Promise.resolve(connectedAt) : new Promise<number>((r) => (onConnect = r)),
    /**
     * Frames written to the socket so far (reported every 100 ms): ahead of what the subscriber
     * has handled by what the socket buffers and its own reading buffer hold.
     */
    sent: (): number => sent,
    close: async () => {
      child.kill('SIGTERM')
      await new Promise((r) => child.once('exit', r))
      if (dir) rmSync(dir, { recursive: true, force: true })
    },
  }
}
