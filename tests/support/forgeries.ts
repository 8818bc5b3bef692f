import { BlockMap, blocksToCarFile, readCarWithRoot } from '@atproto/repo'
import { cborToLex } from '@atproto/repo'
import type { CommitEvent } from '../../src/sources/firehose-frame.ts'
import { commitBody, frame, wireOp } from './frames.ts'

/**
 * Commits that decode but must not be believed, each built from a genuine commit event. Every
 * forgery of a one-op commit makes the indexer reject that op for the reason named here.
 */
export const FORGERIES = {
  /** The same commit, re-signed with a corrupted signature: a valid CAR, a forged commit. */
  async 'bad-signature'(evt: CommitEvent, seq: number, pick = 5): Promise<Uint8Array> {
    const car = await readCarWithRoot(evt.blocks)
    const commit = cborToLex(car.blocks.get(car.root) as Uint8Array) as Record<string, unknown>
    const sig = new Uint8Array(commit.sig as Uint8Array)
    const i = pick % sig.length
    sig[i] = (sig[i] as number) ^ 0xff
    const blocks = new BlockMap()
    for (const [cid, bytes] of car.blocks) if (!cid.equals(car.root)) blocks.set(cid, bytes)
    const root = await blocks.add({ ...commit, sig } as never)
    return frame({ op: 1, t: '#commit' }, { ...commitBody(evt), seq, commit: root, blocks: await blocksToCarFile(root, blocks) })
  },

  /** A CAR with a block whose bytes no longer hash to its CID: `pick` chooses the block and byte (default: the first op's record). */
  async 'bad-car'(evt: CommitEvent, seq: number, pick?: number): Promise<Uint8Array> {
    const car = await readCarWithRoot(evt.blocks)
    const entries = [...car.blocks]
    const recordCid = evt.ops[0]?.cid
    const target = pick === undefined ? entries.findIndex(([cid]) => recordCid && cid.equals(recordCid)) : pick % entries.length
    const blocks = new BlockMap()
    entries.forEach(([cid, bytes], i) => {
      if (i !== target) return blocks.set(cid, bytes)
      const copy = new Uint8Array(bytes)
      const j = pick === undefined ? copy.length - 2 : Math.floor(pick / entries.length) % copy.length
      copy[j] = (copy[j] as number) ^ 0x01
      blocks.set(cid, copy)
    })
    return frame({ op: 1, t: '#commit' }, { ...commitBody(evt), seq, blocks: await blocksToCarFile(car.root, blocks) })
  },

  /** Ops that claim a CID other than the one in the signed tree. */
  async 'unproven-op'(evt: CommitEvent, seq: number): Promise<Uint8Array> {
    return frame({ op: 1, t: '#commit' }, { ...commitBody(evt), seq, ops: evt.ops.map((op) => ({ ...wireOp(op), cid: evt.commit })) })
  },

  /** Ops that claim a delete of records the signed tree still holds. */
  async 'claimed-delete'(evt: CommitEvent, seq: number): Promise<Uint8Array> {
    return frame({ op: 1, t: '#commit' }, { ...commitBody(evt), seq, ops: evt.ops.map((op) => ({ ...wireOp(op), action: 'delete', cid: null })) })
  },

  /** The signed tree holds the op, but the record's block is left out of the CAR. */
  async 'missing-record'(evt: CommitEvent, seq: number): Promise<Uint8Array> {
    const car = await readCarWithRoot(evt.blocks)
    const blocks = new BlockMap()
    for (const [cid, bytes] of car.blocks) if (!evt.ops.some((op) => op.cid && cid.equals(op.cid))) blocks.set(cid, bytes)
    return frame({ op: 1, t: '#commit' }, { ...commitBody(evt), seq, blocks: await blocksToCarFile(car.root, blocks) })
  },

  /** The event names a rev the signed commit does not have. */
  async 'wrong-rev'(evt: CommitEvent, seq: number): Promise<Uint8Array> {
    const rev = evt.rev.slice(0, -1) + (evt.rev.endsWith('z') ? 'y' : 'z')
    return frame({ op: 1, t: '#commit' }, { ...commitBody(evt), seq, rev })
  },

  /** The event's commit CID is not the CAR's root. */
  async 'commit-mismatch'(evt: CommitEvent, seq: number): Promise<Uint8Array> {
    return frame({ op: 1, t: '#commit' }, { ...commitBody(evt), seq, commit: evt.ops[0]?.cid ?? evt.commit })
  },

  /** Another repo's signed commit presented as this one's. */
  async 'wrong-repo'(evt: CommitEvent, seq: number): Promise<Uint8Array> {
    return frame({ op: 1, t: '#commit' }, { ...commitBody(evt), seq, repo: 'did:plc:aaaaaaaaaaaaaaaaaaaaaaaa' })
  },
} satisfies Record<string, (evt: CommitEvent, seq: number, pick?: number) => Promise<Uint8Array>>

export type Forgery = keyof typeof FORGERIES

/** The indexer's rejection reason for each forgery. */
export const REJECTION_REASON: Record<Forgery, string> = {
  'bad-signature': 'bad-signature',
  'bad-car': 'bad-car',
  'unproven-op': 'unproven-op',
  'claimed-delete': 'unproven-op',
  'missing-record': 'unproven-op',
  'wrong-rev': 'wrong-rev',
  'commit-mismatch': 'commit-mismatch',
  'wrong-repo': 'wrong-repo',
}
