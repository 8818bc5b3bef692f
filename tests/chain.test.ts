import { beforeAll, describe, expect, it } from 'vitest'
import { BlockMap, blocksToCarFile, readCarWithRoot } from '@atproto/repo'
import { normaliseRelayUrl } from '../src/config.ts'
import { decodeFrame, type CommitEvent } from '../src/sources/firehose-frame.ts'
import { ChainError, invertOps, openCommit, proveOps } from '../src/atproto/chain.ts'
import { createUser, pdsUrl, type User } from './support/harness.ts'
import { captureFrames, touches } from './support/replay-relay.ts'

/** A plain copy of a decoded commit (the decoder's objects compute some fields lazily). */
const copy = (evt: CommitEvent, changes: Partial<CommitEvent> = {}): CommitEvent => ({
  type: 'commit',
  seq: evt.seq,
  repo: evt.repo,
  rev: evt.rev,
  since: evt.since,
  prevData: evt.prevData,
  commit: evt.commit,
  commitLink: evt.commitLink,
  blocks: evt.blocks,
  ops: evt.ops,
  time: evt.time,
  ...changes,
})

const chainError = async (work: () => Promise<unknown>): Promise<string> => {
  try {
    await work()
  } catch (err) {
    if (err instanceof ChainError) return err.reason
    throw err
  }
  return 'none'
}

const check = async (evt: CommitEvent): Promise<string> => {
  const opened = openCommit(evt)
  await proveOps(opened, evt.ops, () => false)
  return invertOps(opened, evt.ops)
}

let alice: User
let commits: CommitEvent[]

beforeAll(async () => {
  alice = await createUser('chain')
  const likes: string[] = []
  const like = () => ({ subject: { uri: `at://did:plc:x${Math.random().toString(36).slice(2, 8)}/app.bsky.feed.post/3k`, cid: 'bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a' }, createdAt: new Date().toISOString() })
  // Enough records for a tree several levels deep.
  for (let i = 0; i < 120; i++) likes.push((await alice.create('app.bsky.feed.like', like())).uri)
  for (let i = 0; i < 15; i++) await alice.put(likes[i * 3] as string, like())
  for (let i = 0; i < 15; i++) await alice.delete(likes[i * 3 + 1] as string)
  // One commit with several ops, of several collections.
  const node = await alice.node()
  await alice.agent.com.atproto.repo.applyWrites({
    repo: alice.did,
    writes: [
      { $type: 'com.atproto.repo.applyWrites#create', collection: 'app.bsky.feed.like', value: { $type: 'app.bsky.feed.like', ...like() } },
      { $type: 'com.atproto.repo.applyWrites#delete', collection: 'app.bsky.feed.like', rkey: (likes[100] as string).split('/')[4] as string },
      { $type: 'com.atproto.repo.applyWrites#create', collection: 'pub.chive.collaboration.invite', value: { $type: 'pub.chive.collaboration.invite', subject: node, invitee: 'did:plc:someoneelse', createdAt: new Date().toISOString() } },
    ],
  })
  const last = await alice.create('app.bsky.feed.like', like())
  const frames = await captureFrames(normaliseRelayUrl(pdsUrl()), 0, touches(last.uri.split('/').slice(3).join('/')), 30_000)
  commits = frames.map((f) => decodeFrame(f)).filter((e): e is CommitEvent => e.type === 'commit' && e.repo === alice.did)
})

describe('sync 1.1 inversion of real commits', () => {
  it('undoes every create, update and delete of a real repo back to its prevData, commit after commit', async () => {
    const withOps = commits.filter((c) => c.ops.length > 0)
    expect(withOps.length).toBeGreaterThan(150)
    const kinds = new Set(withOps.flatMap((c) => c.ops.map((op) => op.action)))
    expect([...kinds].sort()).toEqual(['create', 'delete', 'update'])
    let previous: string | null = null
    for (const evt of withOps) {
      const before = await check(evt)
      expect(before).toBe(evt.prevData)
      if (previous !== null) expect(before).toBe(previous)
      previous = openCommit(evt).data
    }
  })

  it('lands elsewhere when an op is stripped from a commit', async () => {
    const multi = commits.find((c) => c.ops.length === 3) as CommitEvent
    expect(multi).toBeDefined()
    expect(await check(multi)).toBe(multi.prevData)
    for (let i = 0; i < multi.ops.length; i++) {
      const stripped = copy(multi, { ops: multi.ops.filter((_, j) => j !== i) })
      expect(await check(stripped)).not.toBe(multi.prevData)
    }
  })

  it('refuses ops that are not what the signed tree holds', async () => {
    const update = commits.find((c) => c.ops[0]?.action === 'update') as CommitEvent
    const create = commits.find((c) => c.ops.length === 1 && c.ops[0]?.action === 'create') as CommitEvent
    const del = commits.find((c) => c.ops.length === 1 && c.ops[0]?.action === 'delete') as CommitEvent
    const op = create.ops[0] as CommitEvent['ops'][number]
    // A create claiming another record's CID.
    const wrongCid = copy(create, { ops: [{ ...op, link: update.ops[0]?.link ?? null }] })
    expect(await chainError(() => proveOps(openCommit(wrongCid), wrongCid.ops, () => false))).toBe('unproven-op')
    // A delete of a record that is still there.
    const notDeleted = copy(create, { ops: [{ ...op, action: 'delete', link: null, prev: op.link }] })
    expect(await chainError(() => proveOps(openCommit(notDeleted), notDeleted.ops, () => false))).toBe('unproven-op')
    // An update or delete without `prev` cannot be undone.
    for (const evt of [update, del]) {
      const noPrev = copy(evt, { ops: evt.ops.map((o) => ({ ...o, prev: null })) })
      expect(await chainError(() => check(noPrev))).toBe('not-invertible')
    }
  })

  it('refuses a CAR whose blocks do not hash to their CIDs, and a CAR of another commit', async () => {
    const evt = commits.find((c) => c.ops.length === 1 && c.ops[0]?.action === 'create') as CommitEvent
    const car = await readCarWithRoot(evt.blocks)
    let tampered = 0
    for (const [target] of car.blocks) {
      const blocks = new BlockMap()
      for (const [cid, bytes] of car.blocks) {
        if (!cid.equals(target)) blocks.set(cid, bytes)
        else {
          const altered = new Uint8Array(bytes)
          altered[altered.length - 1] = (altered[altered.length - 1] as number) ^ 1
          blocks.set(cid, altered)
        }
      }
      const forged = copy(evt, { blocks: await blocksToCarFile(car.root, blocks) })
      const reason = await chainError(() => check(forged))
      // A block the proof and the inversion never read cannot mislead them; every block they read is checked.
      if (reason !== 'none') {
        expect(reason).toBe('bad-car')
        tampered++
      }
    }
    expect(tampered).toBeGreaterThanOrEqual(2)
    const other = commits[commits.length - 1] as CommitEvent
    expect(await chainError(() => check(copy(evt, { commitLink: other.commitLink })))).toBe('commit-mismatch')
    expect(await chainError(() => check(copy(evt, { rev: other.rev })))).toBe('wrong-rev')
    expect(await chainError(() => check(copy(evt, { repo: 'did:plc:notalice' })))).toBe('wrong-repo')
  })
})
