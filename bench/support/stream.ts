import { WebSocketServer } from 'ws'
import { decodeAll, encode } from '@atproto/lex-cbor'
import type { LexValue } from '@atproto/lex-data'

/**
 * A synthetic relay stream of `count` frames, cycled from real captured commit frames with
 * fresh, increasing seqs. The last frame is `last` (also re-sequenced), so a consumer that has
 * processed it has processed everything.
 */
export const synthesize = (commits: readonly Uint8Array[], last: Uint8Array, count: number, firstSeq = 1_000_000): Uint8Array[] => {
  const parsed = commits.map((f) => [...decodeAll(f)] as [LexValue, Record<string, LexValue>])
  const out: Uint8Array[] = []
  const withSeq = (header: LexValue, body: Record<string, LexValue>, seq: number) =>
    new Uint8Array(Buffer.concat([encode(header), encode({ ...body, seq })]))
  for (let i = 0; i < count - 1; i++) {
    const [header, body] = parsed[i % parsed.length] as [LexValue, Record<string, LexValue>]
    out.push(withSeq(header, body, firstSeq + i))
  }
  const [h, b] = [...decodeAll(last)] as [LexValue, Record<string, LexValue>]
  out.push(withSeq(h, b, firstSeq + count - 1))
  return out
}

/** Serves the frames to each subscriber as fast as its socket drains. */
export const serveFrames = async (frames: readonly Uint8Array[]) => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/xrpc/com.atproto.sync.subscribeRepos' })
  await new Promise<void>((r) => wss.once('listening', () => r()))
  wss.on('connection', (ws) => {
    let i = 0
    const socket = (ws as unknown as { _socket: { cork(): void; uncork(): void } })._socket
    const pump = () => {
      while (i < frames.length && ws.readyState === ws.OPEN) {
        // Corked batches: one write per 256 frames, so the relay is not what is measured.
        socket.cork()
        for (let n = 0; n < 256 && i < frames.length; n++) ws.send(frames[i++] as Uint8Array, { binary: true })
        socket.uncork()
        if (ws.bufferedAmount > 8 * 1024 * 1024) {
          setTimeout(pump, 1)
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
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()))
    child.once('exit', (code) => reject(new Error(`relay process exited ${code}`)))
  })
  return {
    url,
    close: async () => {
      child.kill('SIGTERM')
      await new Promise((r) => child.once('exit', r))
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
