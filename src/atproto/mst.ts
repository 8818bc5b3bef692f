/**
 * The signed tree of a CAR: its nodes read from hash-checked blocks, paths looked up (a proof of
 * presence or absence) and key ranges walked, with `@atcute/mst`'s walker.
 */
import * as CBOR from '@atcute/cbor'
import { MissingBlockError, NodeStore, NodeWalker, findRpathAndBuildProof, type MSTNode } from '@atcute/mst'
import { VerificationError, type CarStore } from './car.ts'
import { TrustedNode } from './mst-node.ts'

type Link = CBOR.CidLink
type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)

type Entry = { p: number; k: CBOR.Bytes; v: Link; t: Link | null }
const isEntry = (e: unknown): e is Entry =>
  isObj(e) &&
  typeof e.p === 'number' &&
  e.k instanceof CBOR.BytesWrapper &&
  e.v instanceof CBOR.CidLinkWrapper &&
  (e.t === null || e.t instanceof CBOR.CidLinkWrapper)

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * `@atcute/mst`'s NodeStore over a CAR, reading nodes without recomputing what the block's hash
 * already settles: the node's CID is the one it was read under, and no key's height is derived
 * but the first's (see TrustedNode).
 */
export class CarNodeStore extends NodeStore {
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
      throw new VerificationError('bad-mst', `MST node ${cid} is malformed`)
    }
    const keys: string[] = []
    const values: Link[] = []
    const subtrees: (Link | null)[] = [data.l as Link | null]
    let prev = ''
    for (const e of data.e as unknown[]) {
      if (!isEntry(e) || !Number.isInteger(e.p) || e.p < 0 || e.p > prev.length) throw new VerificationError('bad-mst', `MST node ${cid} is malformed`)
      const key = prev.slice(0, e.p) + utf8.decode(CBOR.fromBytes(e.k))
      if (key <= prev) throw new VerificationError('bad-mst', `MST node ${cid} keys are not sorted`)
      keys.push(key)
      values.push(e.v)
      subtrees.push(e.t)
      prev = key
    }
    const node = TrustedNode.read(keys, values, subtrees, bytes, this.car.link(cid))
    this.nodes.set(cid, node)
    return node
  }
  override async put(node: MSTNode): Promise<MSTNode> {
    const cid = (await node.cid()).$link
    this.nodes.set(cid, node)
    await this.car.put(cid, await node.serialize())
    return node
  }
}

/** A tree walk that needs a block the CAR lacks: the proof does not hold. */
export const missingProof = (err: unknown): VerificationError =>
  err instanceof VerificationError ? err : new VerificationError('unproven-op', `missing-proof: the CAR lacks blocks the proof needs: ${(err as Error).message}`)

/** The value at `path` in the tree rooted at `root`, or null when the tree proves it absent. */
export const findPath = async (nodes: NodeStore, root: string, path: string): Promise<Link | null> => {
  try {
    const [found] = await findRpathAndBuildProof(nodes, root, path)
    return found
  } catch (err) {
    throw missingProof(err)
  }
}

/** The one key after every key that starts with `prefix`. */
const pastPrefix = (prefix: string): string => prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)

/** Every key of the tree that starts with `prefix`, in order, with its value. */
export async function* walkPrefix(nodes: NodeStore, root: string, prefix: string): AsyncGenerator<[string, Link]> {
  let walker: NodeWalker
  try {
    walker = await NodeWalker.create(nodes, root)
  } catch (err) {
    throw missingProof(err)
  }
  const entries = walker.entriesInRange(prefix, pastPrefix(prefix))
  while (true) {
    let next: IteratorResult<[string, Link | null]>
    try {
      next = await entries.next()
    } catch (err) {
      throw missingProof(err)
    }
    if (next.done) return
    const [key, value] = next.value
    if (value === null || !key.startsWith(prefix)) throw new VerificationError('bad-mst', `the tree walk left ${prefix} at ${key}`)
    yield [key, value]
  }
}
