import { WebSocketServer } from 'ws'
import WebSocket from 'ws'
import { decodeFrame } from '../../src/sources/firehose-frame.ts'

export interface ReplayRelay {
  url: string
  /** The `cursor` parameter of each subscription so far (null when absent). */
  cursors: (string | null)[]
  /** Drops every open connection, as a relay restart would. */
  dropAll(): void
  close(): Promise<void>
}

/** A relay that serves a fixed list of frames to every subscriber, then stays open. */
export const startReplayRelay = async (frames: readonly Uint8Array[]): Promise<ReplayRelay> => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/xrpc/com.atproto.sync.subscribeRepos' })
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()))
  const cursors: (string | null)[] = []
  wss.on('connection', (ws, req) => {
    cursors.push(new URL(req.url ?? '/', 'http://x').searchParams.get('cursor'))
    for (const frame of frames) ws.send(frame, { binary: true })
  })
  const { port } = wss.address() as { port: number }
  return {
    url: `ws://127.0.0.1:${port}`,
    cursors,
    dropAll() {
      for (const client of wss.clients) client.terminate()
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate()
        wss.close(() => resolve())
      }),
  }
}

/** Reads a real firehose from `cursor` until `until` matches a frame; returns all frames read. */
export const captureFrames = (
  wsUrl: string,
  cursor: number,
  until: (frame: Uint8Array) => boolean,
  timeoutMs = 10_000,
): Promise<Uint8Array[]> =>
  new Promise((resolve, reject) => {
    const frames: Uint8Array[] = []
    const ws = new WebSocket(`${wsUrl}/xrpc/com.atproto.sync.subscribeRepos?cursor=${cursor}`)
    const timer = setTimeout(() => {
      ws.terminate()
      reject(new Error('timed out capturing frames'))
    }, timeoutMs)
    ws.on('message', (data: Buffer) => {
      const frame = new Uint8Array(data)
      frames.push(frame)
      if (until(frame)) {
        clearTimeout(timer)
        ws.terminate()
        resolve(frames)
      }
    })
    ws.on('error', reject)
  })

/** True when the frame is a commit touching the given record path. */
export const touches = (path: string) => (frame: Uint8Array): boolean => {
  try {
    const evt = decodeFrame(frame)
    return evt.type === 'commit' && evt.ops.some((op) => op.path === path)
  } catch {
    return false
  }
}

/** Writes a marker record and returns its seq on the PDS's firehose: "now", in stream terms. */
export const markSeq = async (
  pdsWsUrl: string,
  writer: { create(collection: string, record: Record<string, unknown>): Promise<{ uri: string }> },
  from = 0,
): Promise<number> => {
  const marker = await writer.create('com.example.marker', { createdAt: new Date().toISOString() })
  const frames = await captureFrames(pdsWsUrl, from, touches(marker.uri.split('/').slice(3).join('/')))
  return (decodeFrame(frames[frames.length - 1] as Uint8Array) as { seq: number }).seq
}
