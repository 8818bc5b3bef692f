import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { BlockMap, blocksToCarFile } from '@atproto/repo'
import { isCid, type Cid } from '@atproto/lex-data'
import { decodeFrame, FrameError, type FirehoseEvent } from '../src/sources/firehose-frame.ts'
import { frame } from './support/frames.ts'
import { fuzzSeed, mutantOf } from './support/mutations.ts'

const DID = 'did:plc:ewvi7nxzyoun6zhxrhs64oiz'
const REV = '3jzfcijpj2z2a'
const TYPES = new Set(['commit', 'sync', 'identity', 'account', 'info', 'error', 'other'])

/** One valid frame of every kind the decoder knows, with a real CAR in the commit. */
const validFrames = async (): Promise<{ frames: Uint8Array[]; cids: Cid[] }> => {
  const blocks = new BlockMap()
  const record = await blocks.add({ $type: 'pub.chive.collaboration.invite', invitee: DID, createdAt: '2025-01-01T00:00:00.000Z' })
  const root = await blocks.add({ did: DID, version: 3, rev: REV, prev: null, data: record, sig: new Uint8Array(64) })
  const car = await blocksToCarFile(root, blocks)
  const ops = [{ action: 'create', path: 'pub.chive.collaboration.invite/3jzfcijpj2z2a', cid: record }]
  const frames = [
    frame({ op: 1, t: '#commit' }, { seq: 41, rebase: false, tooBig: false, repo: DID, commit: root, rev: REV, since: null, blocks: car, ops, blobs: [], time: '2025-01-01T00:00:00.000Z', prevData: record }),
    frame({ op: 1, t: '#sync' }, { seq: 42, did: DID, rev: REV, blocks: car, time: '2025-01-01T00:00:00.000Z' }),
    frame({ op: 1, t: '#identity' }, { seq: 43, did: DID, handle: 'alice.test', time: '2025-01-01T00:00:00.000Z' }),
    frame({ op: 1, t: '#account' }, { seq: 44, did: DID, active: false, status: 'takendown', time: '2025-01-01T00:00:00.000Z' }),
    frame({ op: 1, t: '#info' }, { name: 'OutdatedCursor', message: 'too old' }),
    frame({ op: -1 }, { error: 'FutureCursor', message: 'cursor in the future' }),
    frame({ op: 1, t: '#labels' }, { seq: 45, labels: [] }),
  ]
  return { frames, cids: [root, record] }
}

/** What the ingest loop relies on when decodeFrame returns. */
const assertWellFormed = (evt: FirehoseEvent): void => {
  expect(TYPES.has(evt.type)).toBe(true)
  if ('seq' in evt && evt.seq !== undefined) expect(Number.isSafeInteger(evt.seq) && evt.seq >= 0).toBe(true)
  if (evt.type === 'commit') {
    expect(evt.repo).toMatch(/^did:/)
    expect(evt.blocks).toBeInstanceOf(Uint8Array)
    expect(isCid(evt.commit)).toBe(true)
    for (const op of evt.ops) {
      expect(['create', 'update', 'delete']).toContain(op.action)
      expect(typeof op.path).toBe('string')
      expect(op.cid === null || isCid(op.cid)).toBe(true)
    }
  }
}

/** An event, or a FrameError: anything else thrown would be a crash of the ingest loop. */
const decodeOrFrameError = (bytes: Uint8Array): string => {
  try {
    assertWellFormed(decodeFrame(bytes))
    return 'decoded'
  } catch (err) {
    if (err instanceof FrameError) return err.reason
    throw err
  }
}

describe('decodeFrame under mutation', () => {
  it('returns a well-formed event or throws FrameError for tens of thousands of hostile frames', async () => {
    const { frames, cids } = await validFrames()
    for (const f of frames) expect(decodeOrFrameError(f)).toBe('decoded')
    const seed = fuzzSeed('decodeFrame fuzz')
    const outcomes: Record<string, number> = {}
    const numRuns = 20_000
    fc.assert(
      fc.property(mutantOf(frames, cids), (m) => {
        const outcome = decodeOrFrameError(m.bytes)
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1
      }),
      { seed, numRuns },
    )
    console.log(`decodeFrame fuzz: ${numRuns} mutants`, outcomes)
    // The mutations must reach both sides of the decoder, or the fuzz proves little.
    expect(outcomes.decoded).toBeGreaterThan(numRuns / 100)
    for (const reason of ['bad-cbor', 'bad-frame', 'bad-field']) expect(outcomes[reason]).toBeGreaterThan(numRuns / 100)
  })

  it('refuses pathological CBOR without blowing the stack or the heap', () => {
    const pathological = [
      new Uint8Array(0),
      new Uint8Array(200_000).fill(0x81), // arrays nested 200k deep
      new Uint8Array(200_000).fill(0xa1), // maps nested 200k deep
      new Uint8Array([0xa0, 0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // an 8 EiB byte string
      new Uint8Array([0xa0, 0x9a, 0xff, 0xff, 0xff, 0xff]), // an array of 4 billion items
      new Uint8Array([0xbf, 0x61, 0x74, 0x61, 0x74, 0xff, 0xa0]), // indefinite-length map
      new Uint8Array([0xa2, 0x61, 0x74, 0x01, 0x61, 0x74, 0x02, 0xa0]), // duplicate keys
      new Uint8Array([0xa1, 0x63, 0x73, 0x65, 0x71, 0xfb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]), // a float
      new Uint8Array([0xd8, 0x2a, 0x41, 0x00, 0xa0]), // a malformed CID tag
    ]
    for (const bytes of pathological) expect(() => decodeFrame(bytes)).toThrow(FrameError)
  })
})
