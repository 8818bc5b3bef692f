/**
 * A worker of `tracked-corpus.ts`: builds its share of the repos in memory (`@atproto/repo`,
 * MSTs held whole in memory) and turns their commits into `#commit` frames the way a PDS does
 * (`formatSeqCommit` over the repo transactor's commit data, sync 1.1). Frames go back to the
 * main thread in slabs of a few MB (transferred, not copied).
 */
import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import { parentPort, workerData } from 'node:worker_threads'
import { TID } from '@atproto/common-web'
import { Secp256k1Keypair, type Keypair } from '@atproto/crypto'
import { encode } from '@atproto/lex-cbor'
import { cidForCbor, type Cid, type LexValue } from '@atproto/lex-data'
import { BlockMap, DataDiff, Leaf, MST, MemoryBlockstore, mstUtil, signCommit, type NodeEntry } from '@atproto/repo'
import { blueskyRecord, rnd, sentence } from './bluesky-records.ts'

export interface PlannedWrite {
  action: 'create' | 'update' | 'delete'
  collection: string
  rkey: string
  record?: Record<string, unknown>
  /** The record's CID as the planner computed it (checked here). */
  cid?: string
}

export interface WorkerRepo {
  index: number
  did: string
  priv: Uint8Array
  /** Records in the repo before the captured window. */
  records: number
  /** Commits of this (untracked) repo to build as templates for the main thread to cycle. */
  poolCommits: number
}

export interface WorkerInput {
  repos: WorkerRepo[]
  firstSeq: number
  /** The tracked commits of this worker's repos in stream order: slot, repo index, slot, ... */
  tasks: Int32Array
  /** Chive writes planned for some slots; the other tracked slots get Bluesky-like writes. */
  planned: Map<number, PlannedWrite[]>
  deleteShare: number
  updateShare: number
  /** BENCH_CHECK: compare the first repos' bottom-up MSTs with incremental builds, and the first commits' blocks with @atproto/repo's selection. */
  check: boolean
}

export type WorkerMessage =
  | { kind: 'frames'; slots: Int32Array; offsets: Uint32Array; kinds: string[]; buffer: ArrayBuffer }
  | { kind: 'pool'; repos: Int32Array; offsets: Uint32Array; seqAt: Uint32Array; kinds: string[]; buffer: ArrayBuffer }
  | { kind: 'done'; stats: { genesisMs: number; poolMs: number; trackedMs: number; commits: number; ops: Record<string, number> } }
  | { kind: 'error'; message: string }

// Speed-ups of @atproto/repo, in this worker only (BENCH_CHECK checks the frames with the
// unpatched library in the main thread, and this worker's block selection against `DataDiff` and
// `getCoveringProof`):
//  - MST nodes never change once built (edits make new nodes), but @atproto/repo serializes a node
//    again for its pointer, for the diff and for each proof: the encoding is cached on the node (a
//    property: a WeakMap over millions of short-lived nodes costs the GC dearly) and written by a
//    DAG-CBOR writer of its own;
//  - `MST.create` hashes a new node at once; here, as `newTree` does, only when its pointer is
//    asked for (`getPointer`, which every reader of `pointer` calls first).
type Cached = MST & { serialized?: ReturnType<MST['serialize']> }
MST.prototype.serialize = function (this: Cached) {
  return (this.serialized ??= serializeNode(this))
}

/** A CBOR head (major type, length or value). */
const head = (out: number[], major: number, n: number) => {
  if (n < 24) out.push((major << 5) | n)
  else if (n < 0x100) out.push((major << 5) | 24, n)
  else if (n < 0x10000) out.push((major << 5) | 25, n >> 8, n & 0xff)
  else throw new Error('MST node field too long')
}
/** A CID link (tag 42, bytes with a 0 prefix) or null. */
const link = (out: number[], cid: Cid | null) => {
  if (cid === null) return void out.push(0xf6)
  out.push(0xd8, 0x2a)
  head(out, 2, cid.bytes.length + 1)
  out.push(0)
  for (const b of cid.bytes) out.push(b)
}
/**
 * An MST node's DAG-CBOR, written directly ({e, l}; entries {k, p, t, v}: keys in DAG-CBOR
 * order): what `@atproto/lex-cbor`'s general encoder makes of it, several times faster. The
 * first nodes of each worker are compared with that encoder.
 */
const encodeNode = (data: ReturnType<typeof mstUtil.serializeNodeData>): Uint8Array => {
  const out: number[] = [0xa2, 0x61, 0x65]
  head(out, 4, data.e.length)
  for (const e of data.e) {
    out.push(0xa4, 0x61, 0x6b)
    head(out, 2, e.k.length)
    for (const b of e.k) out.push(b)
    out.push(0x61, 0x70)
    head(out, 0, e.p)
    out.push(0x61, 0x74)
    link(out, e.t)
    out.push(0x61, 0x76)
    link(out, e.v)
  }
  out.push(0x61, 0x6c)
  link(out, data.l)
  return Uint8Array.from(out)
}
let compared = 0
/** `MST.serialize`, with the node encoded by `encodeNode`. */
const serializeNode = async (node: MST): Promise<{ cid: Cid; bytes: Uint8Array }> => {
  let entries = await node.getEntries()
  const outdated = entries.filter((e): e is MST => e.isTree() && e.outdatedPointer)
  if (outdated.length > 0) {
    await Promise.all(outdated.map((e) => e.getPointer()))
    entries = await node.getEntries()
  }
  const data = mstUtil.serializeNodeData(entries)
  const bytes = encodeNode(data)
  if (compared < 500) {
    compared++
    const expected = encode(data as unknown as LexValue)
    if (expected.length !== bytes.length || expected.some((b, i) => b !== bytes[i])) throw new Error('encodeNode differs from @atproto/lex-cbor')
  }
  return { cid: await cidForCbor(bytes), bytes }
}
const EMPTY_NODE = await cidForCbor(encode({ l: null, e: [] }))
MST.create = async (store, entries = [], opts) => {
  const node = new MST(store, EMPTY_NODE, entries, opts?.layer ?? null)
  node.outdatedPointer = entries.length > 0
  return node
}

interface NativeSecp256k1 {
  ecdsaSign(msg32: Uint8Array, key: Uint8Array): { signature: Uint8Array }
}
/** libsecp256k1 when installed (low-S compact signatures, as @atproto/crypto's): ~6x faster. */
const native: NativeSecp256k1 | null = (() => {
  try {
    return createRequire(import.meta.url)('secp256k1') as NativeSecp256k1
  } catch {
    return null
  }
})()

const signerFor = async (priv: Uint8Array): Promise<Keypair> => {
  const kp = await Secp256k1Keypair.import(priv)
  if (!native) return kp
  return {
    jwtAlg: kp.jwtAlg,
    did: () => kp.did(),
    sign: async (msg: Uint8Array) => native.ecdsaSign(createHash('sha256').update(msg).digest(), priv).signature,
  }
}

interface Repo {
  index: number
  did: string
  signer: Keypair
  data: MST
  rev: string
  /** Every record's current CID, for the ops' `prev`. */
  cids: Map<string, Cid>
  /** Bluesky records that may be deleted. */
  deletable: string[]
  posts: { uri: string; cid: string }[]
}

const COMMIT_HEADER = encode({ op: 1, t: '#commit' })
const ops: Record<string, number> = { create: 0, update: 0, delete: 0 }
const storage = new MemoryBlockstore()

const profile = () => ({ $type: 'app.bsky.actor.profile', displayName: sentence(5, 20), description: sentence(20, 200), createdAt: new Date().toISOString() })

/** Leading zeros of the key's SHA-256 in 2-bit units: the key's MST layer (fanout 4). */
const layerOf = (key: string): number => {
  const hash = createHash('sha256').update(key).digest()
  let zeros = 0
  for (const byte of hash) {
    if (byte < 64) zeros++
    if (byte < 16) zeros++
    if (byte < 4) zeros++
    if (byte !== 0) break
    zeros++
  }
  return zeros
}

type Item = { key: string; cid: Cid; layer: number }
/**
 * The MST of sorted keys, built bottom-up (each node encoded once): the keys of a node's layer are
 * its leaves, the runs of lower keys between them its subtrees, one layer down.
 */
const buildTree = async (items: readonly Item[], layer: number): Promise<MST> => {
  const entries: NodeEntry[] = []
  let run: Item[] = []
  for (const item of items) {
    if (item.layer < layer) {
      run.push(item)
      continue
    }
    if (run.length > 0) entries.push(await buildTree(run, layer - 1))
    run = []
    entries.push(new Leaf(item.key, item.cid))
  }
  if (run.length > 0) entries.push(await buildTree(run, layer - 1))
  return MST.create(storage, entries, { layer })
}

const genesis = async (r: WorkerRepo, check: boolean): Promise<Repo> => {
  const cids = new Map<string, Cid>()
  const deletable: string[] = []
  const posts: { uri: string; cid: string }[] = []
  const items: Item[] = []
  const add = async (path: string, record: Record<string, unknown>) => {
    const cid = await cidForCbor(encode(record as LexValue))
    items.push({ key: path, cid, layer: layerOf(path) })
    cids.set(path, cid)
    return cid
  }
  await add('app.bsky.actor.profile/self', profile())
  for (let i = 0; i < r.records; i++) {
    const { collection, value } = blueskyRecord(posts)
    const path = `${collection}/${TID.nextStr()}`
    const cid = await add(path, { $type: collection, ...value })
    deletable.push(path)
    if (collection === 'app.bsky.feed.post' && posts.length < 50) posts.push({ uri: `at://${r.did}/${path}`, cid: cid.toString() })
  }
  items.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  // Held whole in memory: nothing is ever read back from storage.
  const data = await buildTree(items, Math.max(0, ...items.map((i) => i.layer)))
  if (check) {
    // The same tree built key by key, as @atproto/repo would.
    let incremental = await MST.create(storage)
    for (const item of items) incremental = await incremental.add(item.key, item.cid)
    const [a, b] = [await data.getPointer(), await incremental.getPointer()]
    if (!a.equals(b)) throw new Error(`bottom-up MST ${a.toString()} is not @atproto/repo's ${b.toString()}`)
  }
  return { index: r.index, did: r.did, signer: await signerFor(r.priv), data, rev: TID.nextStr(), cids, deletable, posts }
}

/** A Bluesky-like commit: mostly creates, some deletes, some profile updates. */
const blueskyWrites = (repo: Repo, input: WorkerInput): PlannedWrite[] => {
  const roll = Math.random()
  if (roll < input.deleteShare && repo.deletable.length > 0) {
    const i = rnd(repo.deletable.length)
    const path = repo.deletable[i] as string
    repo.deletable[i] = repo.deletable[repo.deletable.length - 1] as string
    repo.deletable.pop()
    const [collection, rkey] = path.split('/') as [string, string]
    return [{ action: 'delete', collection, rkey }]
  }
  if (roll < input.deleteShare + input.updateShare) return [{ action: 'update', collection: 'app.bsky.actor.profile', rkey: 'self', record: profile() }]
  const { collection, value } = blueskyRecord(repo.posts)
  return [{ action: 'create', collection, rkey: TID.nextStr(), record: { $type: collection, ...value } }]
}

/** The nodes of `tree` whose pointer is outdated (made by edits since it was last hashed), top down. */
const newNodes = async (tree: MST, out: MST[] = []): Promise<MST[]> => {
  if (!tree.outdatedPointer) return out
  out.push(tree)
  for (const entry of await tree.getEntries()) if (entry.isTree()) await newNodes(entry, out)
  return out
}

type Block = { cid: Cid; bytes: Uint8Array }

/** `MST.getCoveringProof(key)` (same walk, same order), as nodes: their blocks are cached on them. */
const coveringProof = async (tree: MST, key: string, out: MST[]): Promise<void> => {
  const indexIn = (entries: NodeEntry[]) => {
    const i = entries.findIndex((e) => e.isLeaf() && e.key >= key)
    return i >= 0 ? i : entries.length
  }
  const forKey = async (node: MST) => {
    const entries = await node.getEntries()
    const index = indexIn(entries)
    const found = entries[index]
    if (!(found?.isLeaf() && found.key === key)) {
      const prev = entries[index - 1]
      if (!prev || prev.isLeaf()) return
      await forKey(prev)
    }
    out.push(node)
  }
  const forLeftSib = async (node: MST) => {
    const entries = await node.getEntries()
    const prev = entries[indexIn(entries) - 1]
    if (prev?.isTree()) await forLeftSib(prev)
    out.push(node)
  }
  const forRightSib = async (node: MST) => {
    const entries = await node.getEntries()
    const index = indexIn(entries)
    const found = entries[index] ?? entries[index - 1]
    if (found?.isTree()) await forRightSib(found)
    else if (found?.isLeaf()) {
      const next = found.key === key ? entries[index + 1] : entries[index - 1]
      if (next?.isTree()) await forRightSib(next)
    }
    out.push(node)
  }
  await forKey(tree)
  await forLeftSib(tree)
  await forRightSib(tree)
}

const varint = (n: number, out: number[]) => {
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n = Math.floor(n / 128)
  }
  out.push(n)
}

/** `blocksToCarFile(root, blocks)`: a CARv1 of the blocks (each once, first seen first). */
const carFile = (root: Cid, blocks: Iterable<Block>): Uint8Array => {
  const header = encode({ version: 1, roots: [root] })
  const parts: Uint8Array[] = []
  const lengths: number[] = []
  varint(header.length, lengths)
  parts.push(Uint8Array.from(lengths), header)
  const seen = new Set<string>()
  for (const { cid, bytes } of blocks) {
    const key = String.fromCharCode(...cid.bytes)
    if (seen.has(key)) continue
    seen.add(key)
    const len: number[] = []
    varint(cid.bytes.length + bytes.length, len)
    parts.push(Uint8Array.from(len), cid.bytes, bytes)
  }
  return Buffer.concat(parts)
}

/** BENCH_CHECK: commits whose blocks are compared with @atproto/repo's own selection. */
let referenceChecks = 0

/**
 * The blocks `Repo.formatCommit` + `formatSeqCommit` would send for this commit (`DataDiff`'s new
 * MST blocks and leaves, `getCoveringProof` of each write, the commit): the same set as ours.
 */
const checkAgainstReference = async (before: MST, after: MST, writes: readonly PlannedWrite[], ours: Block[], leaves: Block[], commit: Block) => {
  const diff = await DataDiff.of(after, before)
  const expected = new BlockMap()
  expected.addMap(diff.newMstBlocks)
  for (const w of writes) expected.addMap(await after.getCoveringProof(`${w.collection}/${w.rkey}`))
  // The diff's new leaves, and the records the PDS adds when the diff left them out (a CID
  // already elsewhere in the tree): every record written.
  for (const leaf of leaves) expected.set(leaf.cid, leaf.bytes)
  expected.set(commit.cid, commit.bytes)
  const mine = new Set(ours.map((b) => b.cid.toString()))
  const theirs = new Set(expected.cids().map((c) => c.toString()))
  if (mine.size !== theirs.size || [...mine].some((c) => !theirs.has(c))) {
    throw new Error(`commit blocks differ from @atproto/repo's: ours ${[...mine].join(',')}, expected ${[...theirs].join(',')}`)
  }
}

/**
 * One commit, as the PDS makes it: `Repo.formatCommit` (the new MST blocks and the written
 * records as `newBlocks`; the covering proof of every write on the new tree, the records and the
 * commit as `relevantBlocks`), the repo transactor's `ops` (with `prev` for records that existed)
 * and `prevData`; then `formatSeqCommit`'s event body, its CAR holding both block sets.
 */
const commitFrame = async (repo: Repo, writes: readonly PlannedWrite[], seq: number): Promise<{ frame: Uint8Array; kind: string }> => {
  const prevData = await repo.data.getPointer()
  const leaves: Block[] = []
  const commitOps: { action: string; path: string; cid: Cid | null; prev?: Cid }[] = []
  let data = repo.data
  for (const w of writes) {
    const path = `${w.collection}/${w.rkey}`
    const prev = repo.cids.get(path)
    if (w.action === 'delete') {
      data = await data.delete(path)
      repo.cids.delete(path)
      commitOps.push(prev ? { action: 'delete', path, cid: null, prev } : { action: 'delete', path, cid: null })
    } else {
      const bytes = encode(w.record as LexValue)
      const cid = await cidForCbor(bytes)
      if (w.cid !== undefined && cid.toString() !== w.cid) throw new Error(`planned CID ${w.cid} of ${path} is ${cid.toString()} here`)
      leaves.push({ cid, bytes })
      data = w.action === 'create' ? await data.add(path, cid) : await data.update(path, cid)
      repo.cids.set(path, cid)
      commitOps.push(prev ? { action: w.action, path, cid, prev } : { action: w.action, path, cid })
      if (w.collection === 'app.bsky.feed.post') {
        if (repo.posts.length >= 50) repo.posts.shift()
        repo.posts.push({ uri: `at://${repo.did}/${path}`, cid: cid.toString() })
      }
      if (w.action === 'create' && w.collection.startsWith('app.bsky.') && w.rkey !== 'self') repo.deletable.push(path)
    }
    ops[w.action] = (ops[w.action] ?? 0) + 1
  }
  // `DataDiff.of(data, repo.data)`'s new MST blocks are the nodes the writes made: those whose
  // pointer is not computed yet (every node of the previous tree has its pointer).
  const made = await newNodes(data)
  const dataCid = await data.getPointer()
  const proof: MST[] = []
  for (const w of writes) await coveringProof(data, `${w.collection}/${w.rkey}`, proof)
  const rev = TID.nextStr(repo.rev)
  const commit = await signCommit({ did: repo.did, version: 3, rev, prev: null, data: dataCid }, repo.signer)
  const commitBytes = encode(commit as unknown as LexValue)
  const commitCid = await cidForCbor(commitBytes)
  const commitBlock = { cid: commitCid, bytes: commitBytes }
  // newBlocks (new nodes, records, commit), then relevantBlocks (proofs, records, commit).
  const blocks: Block[] = []
  for (const node of made) blocks.push(await node.serialize())
  blocks.push(...leaves, commitBlock)
  for (const node of proof) blocks.push(await node.serialize())
  if (referenceChecks > 0) {
    referenceChecks--
    await checkAgainstReference(repo.data, data, writes, blocks, leaves, commitBlock)
  }
  const body = {
    seq,
    rebase: false,
    tooBig: false,
    repo: repo.did,
    commit: commitCid,
    rev,
    since: repo.rev,
    blocks: carFile(commitCid, blocks),
    ops: commitOps,
    prevData,
    blobs: [],
    time: new Date().toISOString(),
  }
  repo.data = data
  repo.rev = rev
  const bodyBytes = encode(body as unknown as LexValue)
  const frame = new Uint8Array(COMMIT_HEADER.length + bodyBytes.length)
  frame.set(COMMIT_HEADER)
  frame.set(bodyBytes, COMMIT_HEADER.length)
  return { frame, kind: writes.length === 1 ? (writes[0] as PlannedWrite).collection : 'multi-op commit' }
}

/** Frames gathered into one buffer per few MB, transferred to the main thread. */
class Slab {
  private frames: Uint8Array[] = []
  private bytes = 0
  readonly keys: number[] = []
  readonly seqAt: number[] = []
  readonly kinds: string[] = []
  private readonly send: (s: Slab, offsets: Uint32Array, buffer: ArrayBuffer) => void
  constructor(send: (s: Slab, offsets: Uint32Array, buffer: ArrayBuffer) => void) {
    this.send = send
  }
  push(key: number, frame: Uint8Array, kind: string, seqAt = 0): void {
    this.keys.push(key)
    this.kinds.push(kind)
    this.seqAt.push(seqAt)
    this.frames.push(frame)
    this.bytes += frame.length
    if (this.bytes >= 8 << 20) this.flush()
  }
  flush(): void {
    if (this.frames.length === 0) return
    const buffer = new ArrayBuffer(this.bytes)
    const view = new Uint8Array(buffer)
    const offsets = new Uint32Array(this.frames.length + 1)
    let at = 0
    this.frames.forEach((f, i) => {
      offsets[i] = at
      view.set(f, at)
      at += f.length
    })
    offsets[this.frames.length] = at
    this.send(this, offsets, buffer)
    this.frames = []
    this.bytes = 0
    this.keys.length = 0
    this.seqAt.length = 0
    this.kinds.length = 0
  }
}

/** Where the 4-byte seq of an encoded frame is (`seq` key, uint32), to be patched per replay. */
const SEQ_KEY = [0x63, 0x73, 0x65, 0x71, 0x1a]
const seqOffset = (frame: Uint8Array, seq: number): number => {
  for (let i = COMMIT_HEADER.length; i < frame.length - 8; i++) {
    if (SEQ_KEY.every((b, j) => frame[i + j] === b) && new DataView(frame.buffer, frame.byteOffset).getUint32(i + 5) === seq) return i + 5
  }
  throw new Error('seq not found in a template frame')
}

const run = async (input: WorkerInput) => {
  const port = parentPort
  if (!port) throw new Error('not a worker')
  const t0 = performance.now()
  if (input.check) referenceChecks = 2000
  const repos = new Map<number, Repo>()
  for (const [i, r] of input.repos.entries()) repos.set(r.index, await genesis(r, input.check && i < 2))
  const t1 = performance.now()
  // Untracked repos: a pool of commits, round-robin over the repos, cycled by the main thread.
  const pool = new Slab((s, offsets, buffer) => {
    const msg: WorkerMessage = { kind: 'pool', repos: Int32Array.from(s.keys), offsets, seqAt: Uint32Array.from(s.seqAt), kinds: [...s.kinds], buffer }
    port.postMessage(msg, [buffer])
  })
  const untracked = input.repos.filter((r) => r.poolCommits > 0)
  const rounds = Math.max(0, ...untracked.map((r) => r.poolCommits))
  for (let k = 0; k < rounds; k++) {
    for (const r of untracked) {
      if (k >= r.poolCommits) continue
      const repo = repos.get(r.index) as Repo
      const { frame, kind } = await commitFrame(repo, blueskyWrites(repo, input), input.firstSeq)
      pool.push(r.index, frame, kind, seqOffset(frame, input.firstSeq))
    }
  }
  pool.flush()
  const t2 = performance.now()
  const out = new Slab((s, offsets, buffer) => {
    const msg: WorkerMessage = { kind: 'frames', slots: Int32Array.from(s.keys), offsets, kinds: [...s.kinds], buffer }
    port.postMessage(msg, [buffer])
  })
  let commits = 0
  for (let i = 0; i < input.tasks.length; i += 2) {
    const slot = input.tasks[i] as number
    const repo = repos.get(input.tasks[i + 1] as number) as Repo
    const writes = input.planned.get(slot) ?? blueskyWrites(repo, input)
    const { frame, kind } = await commitFrame(repo, writes, input.firstSeq + slot)
    out.push(slot, frame, kind)
    commits++
  }
  out.flush()
  const msg: WorkerMessage = { kind: 'done', stats: { genesisMs: t1 - t0, poolMs: t2 - t1, trackedMs: performance.now() - t2, commits, ops } }
  port.postMessage(msg)
}

run(workerData as WorkerInput).catch((err: unknown) => {
  const msg: WorkerMessage = { kind: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) }
  parentPort?.postMessage(msg)
})
