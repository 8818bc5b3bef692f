/**
 * A relay's firehose frame, read into the sources' one message shape (events.ts). The socket is
 * relay.ts; the CBOR is firehose-frame.ts.
 */
import { decodeFrame, FrameError } from './firehose-frame.ts'
import type { StreamMessage } from './events.ts'

/** Bytes a queued event is charged besides its frame: the decoded objects around it. */
const OVERHEAD = 256

export const readFirehoseFrame = (frame: Uint8Array): StreamMessage => {
  let evt
  try {
    evt = decodeFrame(frame)
  } catch (err) {
    const e = err instanceof FrameError ? err : new FrameError('bad-frame', String(err))
    return { type: 'malformed', reason: e.reason, message: e.message, seq: e.seq }
  }
  switch (evt.type) {
    case 'error':
      return { type: 'problem', name: evt.error, message: evt.message, fatal: true }
    case 'info':
      return { type: 'problem', name: evt.name, message: evt.message, fatal: false }
    case 'other':
      return { type: 'pass', seq: evt.seq }
    case 'commit':
      return { type: 'event', event: evt, bytes: frame.length + OVERHEAD, time: evt.time || null }
    case 'sync':
      return { type: 'event', event: evt, bytes: evt.blocks.length + OVERHEAD, time: null }
    case 'identity':
    case 'account':
      return { type: 'event', event: evt, bytes: OVERHEAD, time: null }
  }
}
