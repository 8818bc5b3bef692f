/**
 * MST nodes built without re-hashing their keys, and the two tree edits the sync 1.1 inversion
 * needs, after `@atcute/mst`'s NodeWrangler (same algorithm, same trees: tests/mst-node.test.ts).
 * Why: `MSTNode.create` re-derives every key's height (one SHA-256 each) for every node an edit
 * builds; measured on a 2-op commit in a 3,000-key tree, open+prove+invert costs 330 µs of CPU
 * with the library's wrangler and 220 µs with this one.
 */
import { hash } from 'node:crypto'
import type * as CBOR from '@atcute/cbor'
import { MSTNode, assertMstKey, type NodeStore } from '@atcute/mst'
import { Lru } from '../lib/lru.ts'

/**
 * A key's MST height (leading zero bits of its SHA-256, in pairs), as `@atcute/mst` derives it,
 * synchronously and remembered: the first keys of a repo's upper nodes come back in every commit.
 */
const heights = new Lru<string, number>(100_000)
export const keyHeight = (key: string): number => {
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

type Link = CBOR.CidLink

/** The fields `@atcute/mst` caches on a node (internal there), set when they are already known. */
interface NodeCaches {
  _cid: Link | undefined
  _bytes: Uint8Array | undefined
}

/**
 * A node whose keys are taken to be of one height: read from a hash-checked block (its repo
 * signed it that way) or built by TreeEditor from the keys of such nodes, each placed by its
 * height. A tree signed with mixed heights makes the inversion land elsewhere than `prevData`,
 * which is caught there; no check is lost, only its cost.
 */
export class TrustedNode extends MSTNode {
  private knownHeight: number | null | undefined

  static of(keys: readonly string[], values: readonly Link[], subtrees: readonly (Link | null)[]): TrustedNode {
    if (subtrees.length !== keys.length + 1 || keys.length !== values.length) throw new TypeError('malformed MST node')
    return new TrustedNode(keys, values, subtrees)
  }

  /** A node read from `bytes` under `cid`: neither is computed again. */
  static read(keys: string[], values: Link[], subtrees: (Link | null)[], bytes: Uint8Array, cid: Link | undefined): TrustedNode {
    const node = TrustedNode.of(keys, values, subtrees)
    const caches = node as unknown as NodeCaches
    caches._bytes = bytes
    caches._cid = cid
    return node
  }

  override async height(): Promise<number | null> {
    if (this.knownHeight === undefined) {
      this.knownHeight = this.isEmpty ? 0 : this.keys.length > 0 ? keyHeight(this.keys[0] as string) : null
    }
    return this.knownHeight
  }
}

const node = TrustedNode.of

const nullable = async (n: MSTNode): Promise<Link | null> => (n.isEmpty ? null : n.cid())

/**
 * Puts and deletes keys of a tree held in a NodeStore, returning the new root's CID; new nodes
 * go to the store. Deleting an absent key and putting an unchanged value change nothing.
 */
export class TreeEditor {
  private readonly ns: NodeStore
  constructor(ns: NodeStore) {
    this.ns = ns
  }

  async put(rootCid: string, key: string, val: Link): Promise<string> {
    assertMstKey(key)
    const root = await this.ns.get(rootCid)
    const updated = root.isEmpty ? await this.putHere(root, key, val) : await this.putIn(root, key, val, keyHeight(key), await root.requireHeight())
    return (await updated.cid()).$link
  }

  async delete(rootCid: string, key: string): Promise<string> {
    assertMstKey(key)
    const root = await this.ns.get(rootCid)
    const result = await this.deleteIn(root, key, keyHeight(key), await root.requireHeight())
    // An empty result is the empty node's CID, not null.
    const top = await this.ns.get(await this.squashTop(result?.$link ?? null))
    return (await top.cid()).$link
  }

  private async putHere(n: MSTNode, key: string, val: Link): Promise<MSTNode> {
    const idx = n.lowerBound(key)
    if (idx < n.keys.length && n.keys[idx] === key) {
      if ((n.values[idx] as Link).$link === val.$link) return n
      return this.ns.put(node(n.keys, n.values.with(idx, val), n.subtrees))
    }
    const [lsub, rsub] = await this.split(n.subtrees[idx] ?? null, key)
    return this.ns.put(
      node(n.keys.toSpliced(idx, 0, key), n.values.toSpliced(idx, 0, val), [...n.subtrees.slice(0, idx), lsub, rsub, ...n.subtrees.slice(idx + 1)]),
    )
  }

  private async putIn(n: MSTNode, key: string, val: Link, height: number, treeHeight: number): Promise<MSTNode> {
    if (height > treeHeight) {
      const grown = await this.ns.put(node([], [], [await n.cid()]))
      return this.putIn(grown, key, val, height, treeHeight + 1)
    }
    if (height < treeHeight) {
      const idx = n.lowerBound(key)
      const below = await this.putIn(await this.ns.get(n.subtrees[idx]?.$link ?? null), key, val, height, treeHeight - 1)
      return this.ns.put(node(n.keys, n.values, n.subtrees.with(idx, await below.cid())))
    }
    return this.putHere(n, key, val)
  }

  /** The subtree at `cid` cut in two around `key`. */
  private async split(cid: Link | null, key: string): Promise<[Link | null, Link | null]> {
    if (cid === null) return [null, null]
    const n = await this.ns.get(cid.$link)
    const idx = n.lowerBound(key)
    const [lsub, rsub] = await this.split(n.subtrees[idx] ?? null, key)
    const left = await this.ns.put(node(n.keys.slice(0, idx), n.values.slice(0, idx), [...n.subtrees.slice(0, idx), lsub]))
    const right = await this.ns.put(node(n.keys.slice(idx), n.values.slice(idx), [rsub, ...n.subtrees.slice(idx + 1)]))
    return [await nullable(left), await nullable(right)]
  }

  /** Empty nodes stripped from the top of the tree. */
  private async squashTop(cid: string | null): Promise<string | null> {
    const n = await this.ns.get(cid)
    const first = n.subtrees[0] ?? null
    if (n.keys.length > 0 || first === null) return cid
    return this.squashTop(first.$link)
  }

  private async deleteIn(n: MSTNode, key: string, height: number, treeHeight: number): Promise<Link | null> {
    if (height > treeHeight) return nullable(n)
    const idx = n.lowerBound(key)
    if (height < treeHeight) {
      const sub = n.subtrees[idx] ?? null
      if (sub === null) return nullable(n)
      const below = await this.deleteIn(await this.ns.get(sub.$link), key, height, treeHeight - 1)
      return nullable(await this.ns.put(node(n.keys, n.values, n.subtrees.with(idx, below))))
    }
    if (idx === n.keys.length || n.keys[idx] !== key) return nullable(n)
    const merged = await this.merge(n.subtrees[idx] ?? null, n.subtrees[idx + 1] ?? null)
    return nullable(
      await this.ns.put(node(n.keys.toSpliced(idx, 1), n.values.toSpliced(idx, 1), [...n.subtrees.slice(0, idx), merged, ...n.subtrees.slice(idx + 2)])),
    )
  }

  /** Two adjacent subtrees as one. */
  private async merge(leftCid: Link | null, rightCid: Link | null): Promise<Link | null> {
    if (leftCid === null) return rightCid
    if (rightCid === null) return leftCid
    const left = await this.ns.get(leftCid.$link)
    const right = await this.ns.get(rightCid.$link)
    const boundary = await this.merge(left.subtrees.at(-1) ?? null, right.subtrees[0] ?? null)
    return nullable(
      await this.ns.put(node([...left.keys, ...right.keys], [...left.values, ...right.values], [...left.subtrees.slice(0, -1), boundary, ...right.subtrees.slice(1)])),
    )
  }
}
