import { hash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import * as CBOR from '@atcute/cbor'
import { MSTNode, MemoryBlockStore, NodeStore, NodeWrangler, findRpathAndBuildProof, getKeyHeight } from '@atcute/mst'
import { CarStore } from '../src/atproto/car.ts'
import '../src/atproto/chain.ts'
import { CarNodeStore, findPath, walkPrefix } from '../src/atproto/mst.ts'
import { TreeEditor, keyHeight } from '../src/atproto/mst-node.ts'
import { fuzzSeed } from './support/mutations.ts'

/**
 * Our MST edits (TreeEditor, nodes that skip the per-key height check) against `@atcute/mst`'s
 * own NodeWrangler, unpatched: the same roots, node bytes, lookups and walks on random trees.
 */

const value = (i: number): CBOR.CidLink => {
  const digest = hash('sha256', `value ${i}`, 'buffer')
  // CIDv1, raw, sha2-256.
  return new CBOR.CidLinkWrapper(new Uint8Array([0x01, 0x55, 0x12, 0x20, ...digest]))
}

const COLLECTIONS = ['app.bsky.feed.like', 'pub.chive.collaboration.invite', 'pub.chive.graph.node', 'pub.chivf.x', 'pub.chiv.y', 'zzz.last']
const keyArb = fc
  .tuple(fc.constantFrom(...COLLECTIONS), fc.stringMatching(/^[a-z2-7]{1,6}$/))
  .map(([collection, rkey]) => `${collection}/${rkey}`)
/** An op on a key of the tree (by index, most of the time) or on a new one. */
const opArb = fc.record({ key: fc.oneof({ arbitrary: fc.nat(), weight: 3 }, { arbitrary: keyArb, weight: 1 }), put: fc.boolean(), value: fc.nat(50) })

/** The empty tree's root, stored as a block as a repo's CAR holds it. */
const emptyRoot = async (ns: NodeStore) => (await (await ns.put(await ns.get(null))).cid()).$link

/** The reference tree, built by `@atcute/mst`, and a CAR-backed copy of its blocks. */
const build = async (initial: string[]) => {
  const blocks = new MemoryBlockStore()
  const ns = new NodeStore(blocks)
  const wrangler = new NodeWrangler(ns)
  let root = await emptyRoot(ns)
  const model = new Map<string, string>()
  for (const [i, key] of initial.entries()) {
    root = await wrangler.putRecord(root, key, value(i))
    model.set(key, value(i).$link)
  }
  const car = new CarStore()
  for (const [cid, bytes] of blocks.blocks) car.add(CBOR.fromCidLink({ $link: cid }).bytes, bytes)
  return { ns, wrangler, root, model, ours: new CarNodeStore(car) }
}

describe('our MST nodes and edits, against @atcute/mst', () => {
  it('derive key heights as @atcute/mst does', async () => {
    await fc.assert(
      fc.asyncProperty(keyArb, async (key) => {
        expect(keyHeight(key)).toBe(await getKeyHeight(key))
      }),
      { seed: fuzzSeed('mst key heights'), numRuns: 300 },
    )
  })

  it('leave @atcute/mst itself as it is: MSTNode.create still refuses mixed heights', async () => {
    const keys = Array.from({ length: 64 }, (_, i) => `app.bsky.feed.like/k${i}`)
    const low = keys.find((k) => keyHeight(k) === 0) as string
    const high = keys.find((k) => keyHeight(k) > 0) as string
    const pair = [low, high].sort()
    await expect(MSTNode.create(pair, [value(1), value(2)], [null, null, null])).rejects.toThrow(/inconsistent key heights/)
  })

  it('put and delete to the same roots and node bytes, and find and walk the same entries', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(keyArb, { maxLength: 400, size: 'large' }), fc.array(opArb, { maxLength: 60, size: 'medium' }), async (initial, arbOps) => {
        const ref = await build(initial)
        const editor = new TreeEditor(ref.ours)
        let refRoot = ref.root
        let ourRoot = ref.root
        const ops = arbOps.map((op) => ({ ...op, key: typeof op.key === 'string' ? op.key : (initial[op.key % Math.max(1, initial.length)] ?? 'a.b/c') }))
        for (const op of ops) {
          if (op.put) {
            refRoot = await ref.wrangler.putRecord(refRoot, op.key, value(op.value))
            ourRoot = await editor.put(ourRoot, op.key, value(op.value))
            ref.model.set(op.key, value(op.value).$link)
          } else {
            refRoot = await ref.wrangler.deleteRecord(refRoot, op.key)
            ourRoot = await editor.delete(ourRoot, op.key)
            ref.model.delete(op.key)
          }
          expect(ourRoot).toBe(refRoot)
        }
        // Every node of the final tree: the same bytes under the same CID.
        const pending = [ourRoot]
        while (pending.length > 0) {
          const cid = pending.pop() as string
          const node = await ref.ours.get(cid)
          expect(await node.serialize()).toEqual(await ref.ns.store.get(cid))
          for (const sub of node.subtrees) if (sub) pending.push(sub.$link)
        }
        for (const key of [...ops.map((op) => op.key), ...initial]) {
          const [expected] = await findRpathAndBuildProof(ref.ns, refRoot, key)
          expect((await findPath(ref.ours, ourRoot, key))?.$link ?? null).toBe(expected?.$link ?? null)
        }
        const walked: [string, string][] = []
        for await (const [key, cid] of walkPrefix(ref.ours, ourRoot, 'pub.chive.')) walked.push([key, cid.$link])
        const expected = [...ref.model].filter(([key]) => key.startsWith('pub.chive.')).sort(([a], [b]) => (a < b ? -1 : 1))
        expect(walked).toEqual(expected)
      }),
      { seed: fuzzSeed('mst edits'), numRuns: 80 },
    )
  })
})
