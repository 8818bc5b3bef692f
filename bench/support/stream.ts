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
export const serveFrames = async (frames: readonly Uint8Array[], onConnection?: () => void) => {
  const chunks: Buffer[] = []
  for (let i = 0; i < frames.length; ) {
    const batch: Buffer[] = []
    let bytes = 0
    while (i < frames.length && bytes < 1 << 20) {
      const m = wsMessage(frames[i++] as Uint8Array)
      batch.push(m)
      bytes += m.length
    }
    chunks.push(Buffer.concat(batch))
  }
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/xrpc/com.atproto.sync.subscribeRepos' })
  await new Promise<void>((r) => wss.once('listening', () => r()))
  wss.on('connection', (ws) => {
    onConnection?.()
    const socket = (ws as unknown as { _socket: import('node:net').Socket })._socket
    let i = 0
    const pump = () => {
      while (i < chunks.length && !socket.destroyed) {
        if (!socket.write(chunks[i++] as Buffer)) {
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

/** Starts `relay-process.ts` on the frames; resolves with its URL and a stop function. */
export const spawnRelay = async (frames: readonly Uint8Array[]) => {
  const { spawn } = await import('node:child_process')
  const { writeFileSync, mkdtempSync, rmSync } = await import('node:fs')
  const os = await import('node:os')
  const path = await import('node:path')
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-relay-'))
  const file = path.join(dir, 'frames.bin')
  const chunks: Buffer[] = []
  for (const f of frames) {
    const len = Buffer.alloc(4)
    len.writeUInt32BE(f.length)
    chunks.push(len, Buffer.from(f))
  }
  writeFileSync(file, Buffer.concat(chunks))
  const child = spawn(process.execPath, [new URL('./relay-process.ts', import.meta.url).pathname, file], { stdio: ['ignore', 'pipe', 'inherit'] })
  // The relay prints its URL, then a line as each subscriber connects.
  let connectedAt: number | null = null
  let onConnect: (at: number) => void = () => {}
  const url = await new Promise<string>((resolve, reject) => {
    let url: string | null = null
    child.stdout.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n').filter(Boolean)) {
        if (url === null) resolve((url = line.trim()))
        else if (line.startsWith('connected') && connectedAt === null) onConnect((connectedAt = performance.now()))
      }
    })
    child.once('exit', (code) => reject(new Error(`relay process exited ${code}`)))
  })
  return {
    url,
    /** When the first subscriber connected (its first frame is on the way): where timing starts. */
    firstConnection: (): Promise<number> =>
      connectedAt !== null ? Promise.resolve(connectedAt) : new Promise<number>((r) => (onConnect = r)),
    close: async () => {
      child.kill('SIGTERM')
      await new Promise((r) => child.once('exit', r))
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
