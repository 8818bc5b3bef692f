/**
 * Sync 1.1 validation of one `#commit` from its own CAR, with `@atcute/car` and `@atcute/mst`:
 * the commit block (hash-checked, of this repo at this rev), the proof of each op in the signed
 * tree, and the inversion of every op, which must lead back to the tree before the commit.
 *
 * Why inversion: `since`, `prevData` and `ops` are unsigned fields of the event. Inverting the ops
 * on the signed tree and landing exactly on the root we hold proves that the ops are the whole
 * difference between the two trees: a stripped op, a dropped commit or a rewritten `prevData`
 * lands elsewhere.
 */
import { hash } from 'node:crypto'
import * as CBOR from '@atcute/cbor'
import { fromUint8Array } from '@atcute/car'
import { MSTNode, MissingBlockError, NodeStore, NodeWrangler, findRpathAndBuildProof, type BlockMap, type BlockStore } from '@atcute/mst'
import type { Cid } from '@atproto/lex-data'
import { Lru } from '../lib/lru.ts'

/** One op of a commit event, as sync 1.1 states it. */
export interface RepoOp {
  action: 'create' | 'update' | 'delete'
  path: string
  /** Decoded only for Chive records (`pub.chive.*`), the only ones whose record is ever read. */
  cid: Cid | null
  /** The op's CID as sent (any collection), for the chain's inversion; null for deletes. */
  link: CBOR.CidLinkWrapper | null
  /** The record's CID before this op (sync 1.1), for updates and deletes. */
  prev: CBOR.CidLinkWrapper | null
}

/** Why an event cannot be trusted as sent: a verdict on the event, never a network condition. */
export class ChainError extends Error {
  readonly reason: string
  constructor(reason: string, message: string) {
    super(message)
    this.reason = reason
  }
}

const cidString = (bytes: Uint8Array): string => new CBOR.CidLinkWrapper(bytes).$link

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.compare(a, b) === 0

interface Block {
  cid: Uint8Array
  bytes: Uint8Array
  checked: boolean
}

/**
 * The CAR's blocks, each hash-checked against its CID the first time it is read: most blocks of
 * a commit are never read, and a block that does not match its CID would let a relay rewrite the
 * tree under a signed root. Writes (nodes made by the inversion) go to a side map.
 */
class CarStore implements BlockStore {
  private readonly blocks = new Map<string, Block>()
  private readonly written = new Map<string, Uint8Array<ArrayBuffer>>()

  add(cid: Uint8Array, bytes: Uint8Array): void {
    this.blocks.set(cidString(cid), { cid, bytes, checked: false })
  }

  /** A block of the CAR, verified; null when absent. */
  read(cid: string): Uint8Array | null {
    const block = this.blocks.get(cid)
    if (!block) return null
    if (!block.checked) {
      // CIDv1, dag-cbor or raw, sha2-256 (the reader refuses anything else).
      const digest = hash('sha256', block.bytes, 'buffer')
      if (!sameBytes(digest, block.cid.subarray(4))) throw new ChainError('bad-car', `block ${cid} does not match its CID`)
      block.checked = true
    }
    return block.bytes
  }

  /** The CID of a block read from the CAR, as a link (the string it was read under, undecoded). */
  link(cid: string): CBOR.CidLink | undefined {
    const block = this.blocks.get(cid)
    return block && new CBOR.CidLinkWrapper(block.cid)
  }

  async get(cid: string): Promise<Uint8Array<ArrayBuffer> | null> {
    return this.written.get(cid) ?? (this.read(cid) as Uint8Array<ArrayBuffer> | null)
  }
  async getMany(cids: string[]): Promise<{ found: BlockMap; missing: string[] }> {
    const found: BlockMap = new Map()
    const missing: string[] = []
    for (const cid of cids) {
      const bytes = await this.get(cid)
      if (bytes) found.set(cid, bytes)
      else missing.push(cid)
    }
    return { found, missing }
  }
  async has(cid: string): Promise<boolean> {
    return this.written.has(cid) || this.blocks.has(cid)
  }
  async put(cid: string, bytes: Uint8Array<ArrayBuffer>): Promise<void> {
    this.written.set(cid, bytes)
  }
  async putMany(blocks: BlockMap): Promise<void> {
    for (const [cid, bytes] of blocks) this.written.set(cid, bytes)
  }
  async delete(cid: string): Promise<void> {
    this.written.delete(cid)
  }
  async deleteMany(cids: string[]): Promise<void> {
    for (const cid of cids) this.written.delete(cid)
  }
}

type Entry = { p: number; k: CBOR.Bytes; v: CBOR.CidLink; t: CBOR.CidLink | null }
const isEntry = (e: unknown): e is Entry =>
  isObj(e) &&
  typeof e.p === 'number' &&
  e.k instanceof CBOR.BytesWrapper &&
  e.v instanceof CBOR.CidLinkWrapper &&
  (e.t === null || e.t instanceof CBOR.CidLinkWrapper)

/** The node's fields that `@atcute/mst` caches; set here because the bytes are already hash-checked. */
interface NodeCaches {
  _cid: CBOR.CidLink | undefined
  _bytes: Uint8Array | undefined
  _height: number | null | undefined
}

/**
 * A key's MST height (leading zero bits of its SHA-256, in pairs), as `@atcute/mst` derives it,
 * synchronously and remembered: the first keys of a repo's upper nodes come back in every commit.
 */
const heights = new Lru<string, number>(100_000)
const keyHeight = (key: string): number => {
  const hit = heights.get(key)
  if (hit !== undefined) return hit
  const digest = hash('sha256', key, 'buffer')
  let lz = 0
  for (const byte of digest) {
    if (byte < 64) lz++
    if (byte < 16) lz++
    if (byte < 4) lz++
    if (byte !== 0) break
    lz++
  }
  heights.set(key, lz)
  return lz
}

class TrustedNode extends MSTNode {
  static of(keys: string[], values: CBOR.CidLink[], subtrees: (CBOR.CidLink | null)[]): MSTNode {
    return new TrustedNode(keys, values, subtrees)
  }
}

/**
 * `NodeWrangler` builds each node it changes through `MSTNode.create`, which re-derives the height
 * of every key of the node (one SHA-256 each) to refuse mixed heights. The wrangler's nodes are
 * made of keys of one existing node (plus the op's key, placed by its height), so the check can
 * only fail on a tree whose nodes were already wrong, which the inversion then reports by landing
 * elsewhere. Only this module uses `@atcute/mst` in the process.
 */
Object.defineProperty(MSTNode, 'create', {
  value: async (keys: string[], values: CBOR.CidLink[], subtrees: (CBOR.CidLink | null)[]) => {
    if (subtrees.length !== keys.length + 1 || keys.length !== values.length) throw new TypeError('malformed MST node')
    return TrustedNode.of(keys, values, subtrees)
  },
})

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * `@atcute/mst`'s NodeStore, reading nodes without recomputing what the block's hash already
 * settles: the node's CID is the one it was read under, and the height of every key is not
 * re-derived (one SHA-256 per key, most of the inversion's cost). A tree whose node heights are
 * wrong was signed that way by its repo; inverting on it lands elsewhere than `prevData`, which
 * resyncs the repo, so no check is lost, only its cost.
 */
class TrustedNodeStore extends NodeStore {
  private readonly car: CarStore
  private readonly nodes = new Map<string, MSTNode>()
  constructor(car: CarStore) {
    super(car)
    this.car = car
  }
  override async get(cid: string | null): Promise<MSTNode> {
    if (cid === null) return super.get(null)
    const hit = this.nodes.get(cid)
    if (hit) return hit
    const bytes = await this.car.get(cid)
    if (bytes === null) throw new MissingBlockError(cid, 'MST node')
    const data = CBOR.decode(bytes)
    if (!isObj(data) || !(data.l === null || data.l instanceof CBOR.CidLinkWrapper) || !Array.isArray(data.e)) {
      throw new ChainError('bad-mst', `MST node ${cid} is malformed`)
    }
    const keys: string[] = []
    const values: CBOR.CidLink[] = []
    const subtrees: (CBOR.CidLink | null)[] = [data.l as CBOR.CidLink | null]
    let prev = ''
    for (const e of data.e as unknown[]) {
      if (!isEntry(e) || !Number.isInteger(e.p) || e.p < 0 || e.p > prev.length) throw new ChainError('bad-mst', `MST node ${cid} is malformed`)
      const key = prev.slice(0, e.p) + utf8.decode(CBOR.fromBytes(e.k))
      if (key <= prev) throw new ChainError('bad-mst', `MST node ${cid} keys are not sorted`)
      keys.push(key)
      values.push(e.v)
      subtrees.push(e.t)
      prev = key
    }
    const node = TrustedNode.of(keys, values, subtrees)
    const caches = node as unknown as NodeCaches
    caches._bytes = bytes
    caches._cid = this.car.link(cid)
    if (keys.length > 0) caches._height = keyHeight(keys[0] as string)
    this.nodes.set(cid, node)
    return node
  }
  override async put(node: MSTNode): Promise<MSTNode> {
    const cid = (await node.cid()).$link
    this.nodes.set(cid, node)
    await this.car.put(cid, (await node.serialize()) as Uint8Array<ArrayBuffer>)
    return node
  }
}

/** A commit event's signed commit, read from its CAR. */
export interface OpenedCommit {
  did: string
  rev: string
  /** The MST root the commit signs. */
  data: string
  /** The decoded commit block, for the signature check. */
  signed: Record<string, unknown>
  store: CarStore
  nodes: NodeStore
}

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * Opens a commit event's CAR: its root is the event's commit, the commit block matches its CID,
 * is a v3 commit of the event's repo at the event's rev. The signature is not checked here (see
 * the indexer: it may be deferred for commits that touch no Chive record).
 */
export const openCommit = (evt: { repo: string; rev: string; commitLink: CBOR.CidLinkWrapper; blocks: Uint8Array }): OpenedCommit => {
  const opened = openCar(evt.blocks, evt.repo, evt.commitLink.bytes)
  if (opened.rev !== evt.rev) throw new ChainError('wrong-rev', `commit rev ${opened.rev} is not event rev ${evt.rev}`)
  return opened
}

/**
 * Opens a CAR whose single root is a signed v3 commit of `did` (a commit event's, or a host's
 * `getRecord` answer at whatever rev the repo is now), the commit block hash-checked.
 */
export const openCar = (blocks: Uint8Array, did: string, expectedRoot?: Uint8Array): OpenedCommit => {
  const store = new CarStore()
  let root: Uint8Array
  try {
    const car = fromUint8Array(blocks)
    const first = car.roots[0]
    if (car.roots.length !== 1 || !first) throw new Error('a commit CAR has one root')
    root = CBOR.fromCidLink(first).bytes
    for (const entry of car) store.add(entry.cid.bytes, entry.bytes)
  } catch (err) {
    throw new ChainError('bad-car', `not a valid CAR: ${(err as Error).message}`)
  }
  if (expectedRoot && !sameBytes(root, expectedRoot)) throw new ChainError('commit-mismatch', 'CAR root is not the event commit')
  const bytes = store.read(cidString(root))
  if (!bytes) throw new ChainError('missing-commit', 'commit block missing')
  let signed: unknown
  try {
    signed = CBOR.decode(bytes)
  } catch (err) {
    throw new ChainError('missing-commit', `commit block is not DAG-CBOR: ${(err as Error).message}`)
  }
  if (!isObj(signed) || signed.version !== 3 || typeof signed.did !== 'string' || typeof signed.rev !== 'string' || !(signed.data instanceof CBOR.CidLinkWrapper)) {
    throw new ChainError('missing-commit', 'commit block is not a v3 repo commit')
  }
  if (signed.did !== did) throw new ChainError('wrong-repo', `commit is for ${signed.did}, not ${did}`)
  return { did: signed.did, rev: signed.rev, data: signed.data.$link, signed, store, nodes: new TrustedNodeStore(store) }
}

/**
 * What the signed tree holds at `path`: the record's CID and its bytes (hash-checked), or null
 * when the tree proves the path absent. Throws ChainError when the CAR lacks the proof's blocks.
 */
export const provePath = async (opened: OpenedCommit, path: string): Promise<{ cid: string; record: Uint8Array } | null> => {
  let found: CBOR.CidLink | null
  try {
    ;[found] = await findRpathAndBuildProof(opened.nodes, opened.data, path)
  } catch (err) {
    throw missing(err)
  }
  if (found === null) return null
  const record = opened.store.read(found.$link)
  if (!record) throw new ChainError('unproven-op', `${path}: record block missing`)
  return { cid: found.$link, record }
}

/** An op proven against the signed tree: a write's record bytes (hash-checked), null for a delete. */
export interface ProvenOp {
  op: RepoOp
  record: Uint8Array | null
}

const missing = (err: unknown): ChainError =>
  err instanceof ChainError ? err : new ChainError('unproven-op', `missing-proof: the CAR lacks blocks the proof needs: ${(err as Error).message}`)

/**
 * Proves each op in the signed tree (a write's CID is at its path, a delete's path is absent) and
 * reads the records of `wanted` ops. Throws ChainError when an op is not what the tree holds: the
 * event's op list is then not the commit's.
 */
export const proveOps = async (opened: OpenedCommit, ops: readonly RepoOp[], wanted: (op: RepoOp) => boolean): Promise<ProvenOp[]> => {
  const ns = opened.nodes
  const proven: ProvenOp[] = []
  for (const op of ops) {
    let found: CBOR.CidLink | null
    try {
      ;[found] = await findRpathAndBuildProof(ns, opened.data, op.path)
    } catch (err) {
      throw missing(err)
    }
    if (op.action === 'delete') {
      if (found !== null) throw new ChainError('unproven-op', `${op.path}: deleted record still in the signed tree`)
      if (wanted(op)) proven.push({ op, record: null })
      continue
    }
    if (op.link === null || found === null || found.$link !== op.link.$link) {
      throw new ChainError('unproven-op', `${op.path}: op CID is not the CID in the signed tree`)
    }
    if (!wanted(op)) continue
    const record = opened.store.read(op.link.$link)
    if (!record) throw new ChainError('unproven-op', `${op.path}: record block missing`)
    proven.push({ op, record })
  }
  return proven
}

/**
 * Undoes the ops on the signed tree and returns the root they lead back to: the tree before the
 * commit, if the ops are the commit's whole difference. Ops must have been proven first.
 */
export const invertOps = async (opened: OpenedCommit, ops: readonly RepoOp[]): Promise<string> => {
  const wrangler = new NodeWrangler(opened.nodes)
  let root = opened.data
  try {
    for (const op of ops) {
      if (op.action === 'create') {
        root = await wrangler.deleteRecord(root, op.path)
        continue
      }
      if (op.prev === null) throw new ChainError('not-invertible', `${op.path}: ${op.action} without prev`)
      root = await wrangler.putRecord(root, op.path, op.prev)
    }
  } catch (err) {
    if (err instanceof ChainError) throw err
    if (err instanceof MissingBlockError) throw new ChainError('not-invertible', `the CAR lacks blocks the inversion needs: ${err.message}`)
    throw new ChainError('not-invertible', `ops cannot be inverted: ${(err as Error).message}`)
  }
  return root
}
