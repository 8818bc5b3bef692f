import { WebSocketServer, type WebSocket } from 'ws'
import { decodeFrame } from '../../src/sources/firehose-frame.ts'

export interface FaultRelayOptions {
  /** Frames sent per second to each subscriber. */
  rate?: number
  /** Chance, per frame sent, that the relay drops the connection right after it. */
  dropChance?: number
  /** Chance, per frame sent, that the relay goes silent (connection open) for `stallMs`. */
  stallChance?: number
  stallMs?: number
  random?: () => number
}

export interface FaultRelay {
  url: string
  /** Highest seq of the sequence: a consumer is done when its cursor reaches it. */
  lastSeq: number
  stats: { connections: number; drops: number; stalls: number; restarts: number }
  /** A relay restart that lost its recent history: it replays from `seq` whatever the cursor. */
  restartFrom(seq: number): void
  close(): Promise<void>
}

/**
 * A relay serving a recorded sequence of real frames, honouring `cursor` (events after it), at a
 * set pace, and misbehaving on request: dropped connections, silent stalls, restarts that replay
 * from an earlier seq.
 */
export const startFaultRelay = async (frames: readonly Uint8Array[], opts: FaultRelayOptions = {}): Promise<FaultRelay> => {
  const rand = opts.random ?? Math.random
  const seqs = frames.map((f) => {
    const evt = decodeFrame(f)
    return 'seq' in evt && typeof evt.seq === 'number' ? evt.seq : -1
  })
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/xrpc/com.atproto.sync.subscribeRepos' })
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()))
  const stats = { connections: 0, drops: 0, stalls: 0, restarts: 0 }
  let forcedStart: number | null = null
  const timers = new Set<NodeJS.Timeout>()
  const rate = opts.rate ?? 500

  const serve = (ws: WebSocket, cursor: number | null) => {
    let i = forcedStart !== null ? seqs.findIndex((s) => s >= (forcedStart as number)) : seqs.findIndex((s) => cursor === null || s > cursor)
    forcedStart = null
    if (i < 0) i = frames.length
    const tick = () => {
      timers.delete(timer)
      if (ws.readyState !== ws.OPEN) return
      // Several frames per tick: timers are coarse at high rates.
      const burst = Math.max(1, Math.round(rate / 100))
      for (let n = 0; n < burst && i < frames.length; n++, i++) {
        ws.send(frames[i] as Uint8Array, { binary: true })
        if (rand() < (opts.dropChance ?? 0)) {
          stats.drops++
          ws.terminate()
          return
        }
        if (rand() < (opts.stallChance ?? 0)) {
          stats.stalls++
          timer = setTimeout(tick, opts.stallMs ?? 2000)
          timers.add(timer)
          return
        }
      }
      if (i < frames.length) {
        timer = setTimeout(tick, (1000 * burst) / rate)
        timers.add(timer)
      }
    }
    let timer = setTimeout(tick, 0)
    timers.add(timer)
  }

  wss.on('connection', (ws, req) => {
    stats.connections++
    const raw = new URL(req.url ?? '/', 'http://x').searchParams.get('cursor')
    serve(ws, raw === null ? null : Number(raw))
  })
  const { port } = wss.address() as { port: number }
  return {
    url: `ws://127.0.0.1:${port}`,
    lastSeq: Math.max(...seqs),
    stats,
    restartFrom(seq: number) {
      stats.restarts++
      forcedStart = seq
      for (const client of wss.clients) client.terminate()
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t)
        for (const client of wss.clients) client.terminate()
        wss.close(() => resolve())
      }),
  }
}
