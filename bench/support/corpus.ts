/**
 * A synthetic relay stream made of real frames: accounts on a local PDS (keys and DID documents in
 * the local PLC) write a Bluesky-like mix of records into repos big enough for realistic MST
 * proofs, and Chive users write invites, subjects and acceptances. The PDS's own firehose is
 * captured (commits with sync 1.1 `since`/`prevData`, `#identity` and `#account` events) and
 * re-sequenced into a stream of any length:
 *  - frames of repos that hold nothing of ours are cycled (an indexer ignores them either way);
 *  - Chive commits keep their order and are spread evenly at the requested share, so tracked
 *    repos see an unbroken chain; the last frame is the last Chive commit.
 */
import { AtpAgent } from '@atproto/api'
import { decodeAll, encode } from '@atproto/lex-cbor'
import type { LexValue } from '@atproto/lex-data'
import { normaliseRelayUrl } from '../../src/config.ts'
import { decodeFrame } from '../../src/sources/firehose-frame.ts'
import { captureFrames, touches } from '../../tests/support/replay-relay.ts'
import { blueskyRecord, now, rnd, sentence } from './bluesky-records.ts'

export interface CorpusOptions {
  frames: number
  /** Share of frames that are commits of our collections (or their subjects); default 0.002. */
  chiveShare?: number
  /** Accounts writing Bluesky records; default 8. */
  fillerAccounts?: number
  /** Records in each of those repos before the captured window (deeper MSTs); default 1200. */
  repoRecords?: number
  /** Single-record commits captured from them; default 800. */
  fillerCommits?: number
  /** Distinct Chive commits captured (cycled, as stale replays, when the share asks for more); default 200. */
  chiveCommits?: number
  firstSeq?: number
}

export interface Corpus {
  frames: Uint8Array[]
  lastSeq: number
  avgBytes: number
  /** Commits touching pub.chive.* in the stream. */
  chiveFrames: number
  /** Frames per kind (collection of a single-op commit, or #identity / #account ...). */
  mix: Record<string, number>
}

export type Account = { agent: AtpAgent; did: string }

/** A fresh account on the local PDS (its DID document in the local PLC). */
export const createAccount = async (pdsUrl: string, name: string): Promise<Account> => {
  const agent = new AtpAgent({ service: pdsUrl })
  const handle = `${name}${rnd(1e6)}.test`
  const did = (await agent.createAccount({ handle, email: `${handle}@example.com`, password: 'password' })).data.did
  return { agent, did }
}

/** Writes `records` Bluesky-like records to the account's repo, 200 a commit; posts are noted for replies and likes. */
export const fillRepo = async (u: Account, records: number, posts: { uri: string; cid: string }[]): Promise<void> => {
  for (let done = 0; done < records; done += 200) {
    const writes = Array.from({ length: Math.min(200, records - done) }, () => {
      const r = blueskyRecord(posts)
      return { $type: 'com.atproto.repo.applyWrites#create' as const, collection: r.collection, value: { $type: r.collection, ...r.value } }
    })
    const res = await u.agent.com.atproto.repo.applyWrites({ repo: u.did, writes })
    for (const [i, w] of writes.entries()) {
      const out = res.data.results?.[i] as { uri?: string; cid?: string } | undefined
      if (w.collection === 'app.bsky.feed.post' && out?.uri && out.cid) posts.push({ uri: out.uri, cid: out.cid })
    }
  }
}

export const buildCorpus = async (pdsUrl: string, opts: CorpusOptions): Promise<Corpus> => {
  const share = opts.chiveShare ?? 0.002
  const firstSeq = opts.firstSeq ?? 1_000_000
  const ws = normaliseRelayUrl(pdsUrl)
  const filler = await Promise.all(Array.from({ length: opts.fillerAccounts ?? 8 }, (_, i) => createAccount(pdsUrl, `bsky${i}`)))
  const posts: { uri: string; cid: string }[] = []
  // Big repos first (these commits are not captured): real repos hold thousands of records.
  for (const u of filler) await fillRepo(u, opts.repoRecords ?? 1200, posts)
  const chive = await Promise.all(Array.from({ length: 4 }, (_, i) => createAccount(pdsUrl, `chive${i}`)))
  const marker = await filler[0]?.agent.com.atproto.repo.createRecord({ repo: filler[0].did, collection: 'app.bsky.feed.like', record: { $type: 'app.bsky.feed.like', subject: posts[0], createdAt: now() } })
  // The captured window: single-record commits, as most of the network's are.
  const fillerWrites = async () => {
    for (let i = 0; i < (opts.fillerCommits ?? 800); i++) {
      const u = filler[i % filler.length] as Account
      const r = blueskyRecord(posts)
      await u.agent.com.atproto.repo.createRecord({ repo: u.did, collection: r.collection, record: { $type: r.collection, ...r.value } })
    }
  }
  const chiveWrites = async () => {
    const wanted = opts.chiveCommits ?? 200
    const invites: { by: Account; to: Account; uri: string; cid: string; subject: { uri: string; cid: string } }[] = []
    const nodes = new Map<Account, { uri: string; cid: string }[]>(chive.map((c) => [c, []]))
    for (let n = 0; n < wanted; n++) {
      const by = chive[rnd(chive.length)] as Account
      const to = chive.filter((c) => c !== by)[rnd(chive.length - 1)] as Account
      const mine = nodes.get(by) as { uri: string; cid: string }[]
      const open = invites.filter((i) => i.to === by)
      const roll = Math.random()
      if (mine.length === 0 || roll < 0.25) {
        const res = await by.agent.com.atproto.repo.createRecord({ repo: by.did, collection: 'pub.chive.graph.node', record: { $type: 'pub.chive.graph.node', title: sentence(10, 60), createdAt: now() } })
        mine.push({ uri: res.data.uri, cid: res.data.cid })
      } else if (roll < 0.75 || open.length === 0) {
        const subject = mine[rnd(mine.length)] as { uri: string; cid: string }
        const res = await by.agent.com.atproto.repo.createRecord({
          repo: by.did,
          collection: 'pub.chive.collaboration.invite',
          record: { $type: 'pub.chive.collaboration.invite', subject, invitee: to.did, role: 'collaborator', message: sentence(10, 120), createdAt: now() },
        })
        invites.push({ by, to, uri: res.data.uri, cid: res.data.cid, subject })
      } else {
        // `by` answers an invite it received.
        const inv = open[rnd(open.length)] as (typeof invites)[number]
        await by.agent.com.atproto.repo.createRecord({
          repo: by.did,
          collection: 'pub.chive.collaboration.inviteAcceptance',
          record: { $type: 'pub.chive.collaboration.inviteAcceptance', invite: { uri: inv.uri, cid: inv.cid }, subject: inv.subject, createdAt: now() },
        })
      }
    }
    // The stream ends on an invite, which every consumer (the baseline's filter too) hands over.
    const [by, to] = chive as [Account, Account]
    const node = await by.agent.com.atproto.repo.createRecord({ repo: by.did, collection: 'pub.chive.graph.node', record: { $type: 'pub.chive.graph.node', title: 'last', createdAt: now() } })
    await by.agent.com.atproto.repo.createRecord({
      repo: by.did,
      collection: 'pub.chive.collaboration.invite',
      record: { $type: 'pub.chive.collaboration.invite', subject: { uri: node.data.uri, cid: node.data.cid }, invitee: to.did, createdAt: now() },
    })
  }
  await Promise.all([fillerWrites(), chiveWrites()])
  const end = await filler[0]?.agent.com.atproto.repo.createRecord({ repo: filler[0].did, collection: 'app.bsky.feed.like', record: { $type: 'app.bsky.feed.like', subject: posts[0], createdAt: now() } })
  const pathOf = (uri: string | undefined) => uri?.split('/').slice(3).join('/') ?? ''
  const all = await captureFrames(ws, 0, touches(pathOf(end?.data.uri)), 60_000)
  const start = all.findIndex(touches(pathOf(marker?.data.uri)))
  const chiveDids = new Set(chive.map((c) => c.did))
  // Each captured frame decoded once, with what the stream assembly needs of it.
  const described = all.map((frame) => {
    const e = decodeFrame(frame)
    const did = e.type === 'commit' ? e.repo : 'did' in e ? e.did : undefined
    const kind = e.type === 'commit' ? (e.ops.length === 1 ? (e.ops[0]?.path.split('/')[0] ?? 'commit') : 'multi-op commit') : `#${e.type}`
    const chive = e.type === 'commit' && e.ops.some((op) => op.path.startsWith('pub.chive.'))
    return { frame, kind, chive, ofChiveUser: did !== undefined && chiveDids.has(did), accountEvent: e.type === 'identity' || e.type === 'account' }
  })
  const window = described.slice(start + 1, -1)
  const ours = window.filter((d) => d.chive)
  // Frames of Chive users that carry nothing of ours (#identity, #account) are left out: a
  // tracked repo's events must not repeat. The filler accounts' creation events are a realistic
  // sprinkle of #identity / #account.
  const cycle = [
    ...window.filter((d) => !d.chive && !d.ofChiveUser),
    ...described.slice(0, start).filter((d) => d.accountEvent && !d.ofChiveUser),
  ]
  if (ours.length === 0 || cycle.length === 0) throw new Error('corpus capture found no frames')

  const parse = (d: (typeof described)[number]) => ({ kind: d.kind, parts: [...decodeAll(d.frame)] as [LexValue, Record<string, LexValue>] })
  const oursParsed = ours.map(parse)
  const cycleParsed = cycle.map(parse)
  const count = opts.frames
  const chiveFrames = Math.max(1, Math.min(count, Math.round(count * share)))
  const every = count / chiveFrames
  // Chive commits at evenly spaced positions; the last position gets the last captured commit.
  const slots = new Map<number, number>()
  const offset = oursParsed.length - 1 - ((chiveFrames - 1) % oursParsed.length)
  for (let k = 0; k < chiveFrames; k++) slots.set(Math.round((k + 1) * every) - 1, (k + offset) % oursParsed.length)
  const frames: Uint8Array[] = []
  const mix: Record<string, number> = {}
  let c = 0
  for (let i = 0; i < count; i++) {
    const slot = slots.get(i)
    const src = (slot !== undefined ? oursParsed[slot] : cycleParsed[c++ % cycleParsed.length]) as ReturnType<typeof parse>
    const [header, body] = src.parts
    frames.push(new Uint8Array(Buffer.concat([encode(header), encode({ ...body, seq: firstSeq + i })])))
    mix[src.kind] = (mix[src.kind] ?? 0) + 1
  }
  const last = decodeFrame(frames[frames.length - 1] as Uint8Array)
  if (last.type !== 'commit' || !last.ops.some((op) => op.path.startsWith('pub.chive.collaboration.'))) throw new Error('the last frame is not an invite commit')
  return {
    frames,
    lastSeq: firstSeq + count - 1,
    avgBytes: frames.reduce((n, f) => n + f.length, 0) / frames.length,
    chiveFrames: slots.size,
    mix,
  }
}
