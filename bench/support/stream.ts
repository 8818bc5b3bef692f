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
    const pump = () => {
      while (i < frames.length && ws.readyState === ws.OPEN) {
        ws.send(frames[i++] as Uint8Array, { binary: true })
        if (ws.bufferedAmount > 4 * 1024 * 1024) {
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
