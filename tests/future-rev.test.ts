import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { Secp256k1Keypair } from '@atproto/crypto'
import { encode } from '@atproto/lex-cbor'
import { cidForCbor } from '@atproto/lex-data'
import { MST, MemoryBlockstore, blocksToCarFile, signCommit } from '@atproto/repo'
import * as plc from '@did-plc/lib'
import { openSignedRepo, VerificationError } from '../src/atproto/commit.ts'
import { TransientError } from '../src/atproto/host.ts'
import { createIdResolver, createProofFetch } from '../src/atproto/identity.ts'
import { RepoKeys } from '../src/atproto/keys.ts'
import { loadLexicons } from '../src/atproto/lexicons.ts'
import { RecordProofs } from '../src/atproto/record-proof.ts'
import { snapshotRepo } from '../src/workers/snapshot.ts'
import { revAt } from './support/tid.ts'

/**
 * A repo host that serves its repo at a rev more than 5 minutes ahead, validly signed by the key
 * in the repo's DID document (a did:plc of the test PLC whose key is held here): neither a
 * snapshot (getRepo) nor a record proof (getRecord) is taken from it. A commit 1 minute ahead
 * (clock skew) is.
 */

const COLLECTION = 'pub.chive.graph.node'
const RKEY = 'self'

let server: http.Server
let host: string
let did: string
let key: Secp256k1Keypair
/** What the stand-in serves for both getRepo and getRecord (the whole repo proves any path). */
let car: Uint8Array = new Uint8Array()

const repoAt = async (rev: string): Promise<{ car: Uint8Array; record: string }> => {
  const bytes = encode({ $type: COLLECTION, title: 'a subject', createdAt: new Date().toISOString() })
  const record = await cidForCbor(bytes)
  const mst = await MST.create(new MemoryBlockstore()).then((t) => t.add(`${COLLECTION}/${RKEY}`, record))
  const { root, blocks } = await mst.getUnstoredBlocks()
  blocks.set(record, bytes)
  const commit = await signCommit({ did, version: 3, rev, data: root, prev: null }, key)
  const commitCid = await blocks.add(commit as never)
  return { car: await blocksToCarFile(commitCid, blocks), record: record.toString() }
}

const idResolver = () => createIdResolver({ plcUrl: inject('plcUrl'), allowPrivateNetwork: true })
const fetch = createProofFetch({ allowPrivateNetwork: true, timeoutMs: 5000, maxBytes: 4 * 1024 * 1024 })
const noneHeld = { invites: [], acceptances: [], subjects: [] }

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    if (path === '/xrpc/com.atproto.sync.getRepo' || path === '/xrpc/com.atproto.sync.getRecord') {
      res.writeHead(200, { 'content-type': 'application/vnd.ipld.car' }).end(car)
    } else res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'NotFound' }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  host = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  key = await Secp256k1Keypair.create()
  // @did-plc/lib types its signer with an older @atproto/crypto; the interface is the same.
  const genesis = await plc.createOp({ signingKey: key.did(), handle: `ahead${Date.now()}.test`, pds: host, rotationKeys: [key.did()], signer: key as never })
  await new plc.Client(inject('plcUrl')).sendOperation(genesis.did, genesis.op)
  did = genesis.did
})

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

describe('a host serving its repo at a rev ahead of this clock', () => {
  it('a getRepo snapshot more than 5 minutes ahead is a verdict, not a snapshot', async () => {
    const keys = new RepoKeys(idResolver())
    const skewed = await repoAt(revAt(60_000))
    car = skewed.car
    const taken = await snapshotRepo(fetch, host, did, keys, loadLexicons(), noneHeld)
    expect(taken.effects).toMatchObject([{ kind: 'subject', uri: `at://${did}/${COLLECTION}/${RKEY}`, cid: skewed.record }])

    const rev = revAt(10 * 60_000)
    car = (await repoAt(rev)).car
    const verdict = await openSignedRepo(car, did, keys, true).catch((e: unknown) => e)
    expect(verdict).toBeInstanceOf(VerificationError)
    expect((verdict as VerificationError).reason).toBe('future-rev')
    const refused = await snapshotRepo(fetch, host, did, keys, loadLexicons(), noneHeld).catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(Error)
    expect((refused as Error).message).toContain(`future-rev: commit rev ${rev} is more than 5 minutes ahead`)
  })

  it('a getRecord proof (Jetstream mode) whose commit is more than 5 minutes ahead is refused', async () => {
    const resolver = idResolver()
    const keys = new RepoKeys(resolver)
    await keys.get(did)
    const proofs = new RecordProofs({ idResolver: resolver, keys, fetch })
    const skewed = await repoAt(revAt(60_000))
    car = skewed.car
    expect(await proofs.prove(did, COLLECTION, RKEY)).toMatchObject({ found: { cid: skewed.record } })

    const rev = revAt(10 * 60_000)
    car = (await repoAt(rev)).car
    const refused = await proofs.prove(did, COLLECTION, RKEY).catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(TransientError)
    expect((refused as TransientError).message).toContain(`future-rev: commit rev ${rev} is more than 5 minutes ahead`)
  })
})
