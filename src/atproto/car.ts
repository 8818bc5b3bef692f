/**
 * CAR files as hosts and relays send them (a commit event's blocks, a `getRecord` proof, a
 * `getRepo` snapshot), read with `@atcute/car`: every block is checked against its CID before
 * anything reads it, so that no one can rewrite a tree under a signed root.
 */
import { hash } from 'node:crypto'
import * as CBOR from '@atcute/cbor'
import { fromUint8Array } from '@atcute/car'
import type { BlockMap, BlockStore } from '@atcute/mst'

/**
 * Why a commit, a proof or a snapshot cannot be trusted as sent: a verdict on what was sent,
 * never a network condition (that is a TransientError).
 */
export class VerificationError extends Error {
  readonly reason: string
  constructor(reason: string, message: string) {
    super(message)
    this.reason = reason
  }
}

export const cidString = (bytes: Uint8Array): string => new CBOR.CidLinkWrapper(bytes).$link

export const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.compare(a, b) === 0

interface Block {
  cid: Uint8Array
  bytes: Uint8Array
  checked: boolean
}

/**
 * The CAR's blocks, each hash-checked against its CID the first time it is read: most blocks of
 * a commit event are never read. Writes (nodes made by the inversion) go to a side map.
 */
export class CarStore implements BlockStore {
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
      if (!sameBytes(digest, block.cid.subarray(4))) throw new VerificationError('bad-car', `block ${cid} does not match its CID`)
      block.checked = true
    }
    return block.bytes
  }

  /** Checks every block now: a whole repo is taken as sent or not at all. */
  checkAll(): void {
    for (const cid of this.blocks.keys()) this.read(cid)
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

/** A CAR with a single root, its blocks not yet checked (see CarStore.read). */
export const readCar = (bytes: Uint8Array): { root: Uint8Array; store: CarStore } => {
  const store = new CarStore()
  try {
    const car = fromUint8Array(bytes)
    const first = car.roots[0]
    if (car.roots.length !== 1 || !first) throw new Error('a commit CAR has one root')
    for (const entry of car) store.add(entry.cid.bytes, entry.bytes)
    return { root: CBOR.fromCidLink(first).bytes, store }
  } catch (err) {
    throw new VerificationError('bad-car', `not a valid CAR: ${(err as Error).message}`)
  }
}
