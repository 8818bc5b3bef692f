/**
 * The "tracked" ingest stream: few repos, many of them tracked. 500 repos (real did:plc entries
 * in the local PLC, secp256k1 keys held here, their PDS the local one), built in memory with
 * `@atproto/repo` instead of through the PDS (hundreds of thousands of commits would take hours
 * there), their commits emitted as a PDS emits them (sync 1.1 `#commit`: `since`, `prevData`,
 * the CAR of new and relevant blocks so that the ops can be inverted down to `prevData`, `prev`
 * on updates and deletes).
 *  - 136 repos (~27%) hold Chive records: each is onboarded early in the stream (a commit that
 *    creates a `pub.chive.graph.node` and invites another of them onto it), then writes subjects,
 *    invites, acceptances, subject updates, revocations and withdrawals (~1.5% of all frames) and,
 *    for the rest of its ~28% of the frames, Bluesky-like records (likes, posts, reposts, follows;
 *    10% deletes, 5% profile updates). Their MSTs are deep (1,000-2,000 records before the
 *    stream) and their chains unbroken in stream order.
 *  - the other 364 repos (200-1,200 records each) write the remaining ~72%: a pool of their
 *    commits is cycled with fresh seqs (an indexer ignores them, their chains do not matter),
 *    with a sprinkle of `#identity` and `#account` events.
 * The last frame is an invite commit. BENCH_CHECK=1 checks a sample of the frames (CAR root,
 * signature, inversion of the ops down to prevData) and the tracked chains.
 */
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { TID } from '@atproto/common-web'
import { Secp256k1Keypair } from '@atproto/crypto'
import { decodeAll, encode } from '@atproto/lex-cbor'
import { cidForCbor, type Cid, type LexValue } from '@atproto/lex-data'
import { MST, MemoryBlockstore, cborToLex, readCarWithRoot, verifyCommitSig, type Commit } from '@atproto/repo'
import * as plc from '@did-plc/lib'
import { decodeFrame, type CommitEvent } from '../../src/sources/firehose-frame.ts'
import { now, rnd, sentence } from './bluesky-records.ts'
import type { Corpus } from './corpus.ts'
import type { PlannedWrite, WorkerInput, WorkerMessage, WorkerRepo } from './tracked-worker.ts'

export interface TrackedCorpusOptions {
  frames: number
  /** Repos in the stream; default 500. */
  repos?: number
  /** Of which hold Chive records; default 136. */
  trackedRepos?: number
  /** Share of frames that are commits of those repos; default 0.28. */
  trackedShare?: number
  /** Share of frames that are commits touching pub.chive.*; default 0.015. */
  chiveShare?: number
  /** Shares of #identity and #account frames (of untracked repos); default 0.01 and 0.005. */
  identityShare?: number
  accountShare?: number
  /** Shares of deletes and (profile) updates among Bluesky commits; default 0.1 and 0.05. */
  deleteShare?: number
  updateShare?: number
  /** Records of a tracked / untracked repo before the stream: [min, max]; default [1000, 2000] / [200, 1200]. */
  trackedRecords?: [number, number]
  untrackedRecords?: [number, number]
  /** Distinct commits built per untracked repo (cycled); default 16. */
  poolCommits?: number
  /** Worker threads building repos; default: one per core. */
  workers?: number
  firstSeq?: number
}

export interface TrackedCorpus extends Corpus {
  /** Share of frames that are commits of repos holding Chive records. */
  trackedShare: number
  repos: number
  trackedRepos: number
  /** Ops of the built commits (tracked ones and the untracked pool), by action. */
  ops: Record<string, number>
  /** Where the generation time went, ms. */
  timings: Record<string, number>
}

const INVITE = 'pub.chive.collaboration.invite'
const ACCEPTANCE = 'pub.chive.collaboration.inviteAcceptance'
const NODE = 'pub.chive.graph.node'
const ROLES = ['collaborator', 'editor', 'viewer', 'co-author', 'reviewer']

type Ref = { uri: string; cid: string }
const between = ([min, max]: [number, number]) => min + rnd(max - min + 1)
const cidOf = async (record: Record<string, unknown>) => (await cidForCbor(encode(record as LexValue))).toString()

/** Frames built here (#identity, #account, replays), packed into large buffers. */
class Packer {
  private buf = new Uint8Array(0)
  private at = 0
  take(n: number): Uint8Array {
    if (this.at + n > this.buf.length) {
      this.buf = new Uint8Array(Math.max(n, 16 << 20))
      this.at = 0
    }
    const out = this.buf.subarray(this.at, this.at + n)
    this.at += n
    return out
  }
  frame(header: Uint8Array, body: Uint8Array): Uint8Array {
    const out = this.take(header.length + body.length)
    out.set(header)
    out.set(body, header.length)
    return out
  }
}

/** Registers the repos' DIDs in the PLC: genesis ops whose `#atproto` key is held here. */
const registerDids = async (plcUrl: string, pdsUrl: string, keys: Secp256k1Keypair[]): Promise<{ did: string; handle: string }[]> => {
  const client = new plc.Client(plcUrl)
  const out: { did: string; handle: string }[] = new Array(keys.length)
  let next = 0
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < keys.length) {
        const i = next++
        const key = keys[i] as Secp256k1Keypair
        const handle = `tracked${i}-${rnd(1e6)}.test`
        // @did-plc/lib types its signer with an older @atproto/crypto; the interface is the same.
        const { op, did } = await plc.createOp({ signingKey: key.did(), handle, pds: pdsUrl, rotationKeys: [key.did()], signer: key as never })
        await client.sendOperation(did, op)
        out[i] = { did, handle }
      }
    }),
  )
  return out
}

// Slot kinds in the stream plan.
const FREE = 0
const CHIVE = 1
const BSKY = 2
const UNTRACKED = 3
const IDENTITY = 4
const ACCOUNT = 5

export const buildTrackedCorpus = async (net: { plcUrl: string; pdsUrl: string }, opts: TrackedCorpusOptions): Promise<TrackedCorpus> => {
  const t0 = performance.now()
  const N = opts.frames
  const R = opts.repos ?? 500
  const T = opts.trackedRepos ?? 136
  const firstSeq = opts.firstSeq ?? 1_000_000
  // Replayed frames get their seq patched in place: every seq must be a 4-byte CBOR uint.
  if (firstSeq < 0x10000 || firstSeq + N >= 2 ** 32) throw new Error('seqs must be within [65536, 2^32)')
  if (T < 2 || R <= T) throw new Error('need at least two tracked repos and one untracked')
  if (N < 4 * T + 10) throw new Error(`the tracked stream needs at least ${4 * T + 10} frames`)

  const keys = await Promise.all(Array.from({ length: R }, () => Secp256k1Keypair.create({ exportable: true })))
  const ids = await registerDids(net.plcUrl, net.pdsUrl, keys)
  const dids = ids.map((i) => i.did)
  const t1 = performance.now()

  // --- the plan: what each slot of the stream is
  const kind = new Uint8Array(N)
  const repoOf = new Int32Array(N).fill(-1)
  const trackedTotal = Math.max(T + 1, Math.round(N * (opts.trackedShare ?? 0.28)))
  const chiveTotal = Math.min(trackedTotal, Math.max(T + 1, Math.round(N * (opts.chiveShare ?? 0.015))))
  const chiveSlots: number[] = []
  // The last slot is kept for the final invite; a taken slot yields to the next free one.
  const claim = (slot: number) => {
    let s = slot
    while (s < N - 1 && kind[s] !== FREE) s++
    while (s >= N - 1 || kind[s] !== FREE) s--
    kind[s] = CHIVE
    chiveSlots.push(s)
  }
  // Every tracked repo is onboarded within the first 2% of the stream (or 4 frames apart).
  const window = Math.min(N - 1, Math.max(Math.ceil(N * 0.02), 4 * T))
  for (let k = 0; k < T; k++) claim(Math.floor(((k + 0.5) * window) / T))
  const steady = chiveTotal - T - 1
  for (let k = 0; k < steady; k++) claim(window + Math.floor(((k + 0.5) * (N - 1 - window)) / steady))
  kind[N - 1] = CHIVE
  chiveSlots.push(N - 1)
  chiveSlots.sort((a, b) => a - b)
  let bsky = trackedTotal - chiveTotal
  let free = N - chiveTotal
  const identityShare = opts.identityShare ?? 0.01
  const accountShare = opts.accountShare ?? 0.005
  for (let s = 0; s < N; s++) {
    if (kind[s] !== FREE) continue
    if (Math.random() * free-- < bsky) {
      bsky--
      kind[s] = BSKY
      repoOf[s] = rnd(T)
      continue
    }
    const roll = Math.random()
    kind[s] = roll < identityShare ? IDENTITY : roll < identityShare + accountShare ? ACCOUNT : UNTRACKED
    repoOf[s] = T + rnd(R - T)
  }

  // --- the Chive records, in stream order (their CIDs are needed for the strongRefs)
  const planned = new Map<number, PlannedWrite[]>()
  const nodes: { repo: number; rkey: string; ref: Ref }[][] = Array.from({ length: T }, () => [])
  const invites: { repo: number; rkey: string; ref: Ref; subject: Ref; invitee: number; accepted: boolean }[] = []
  const acceptances: { repo: number; rkey: string }[] = []
  const uri = (repo: number, collection: string, rkey: string) => `at://${dids[repo]}/${collection}/${rkey}`
  const otherTracked = (repo: number) => (repo + 1 + rnd(T - 1)) % T
  const newNode = async (repo: number): Promise<PlannedWrite> => {
    const rkey = TID.nextStr()
    const record = { $type: NODE, title: sentence(10, 60), createdAt: now() }
    const cid = await cidOf(record)
    nodes[repo]?.push({ repo, rkey, ref: { uri: uri(repo, NODE, rkey), cid } })
    return { action: 'create', collection: NODE, rkey, record, cid }
  }
  const newInvite = async (repo: number, subject: Ref, inviteeTracked = true): Promise<PlannedWrite> => {
    const invitee = inviteeTracked ? otherTracked(repo) : T + rnd(R - T)
    const rkey = TID.nextStr()
    const record: Record<string, unknown> = { $type: INVITE, subject, invitee: dids[invitee], createdAt: now() }
    if (Math.random() < 0.7) record.role = ROLES[rnd(ROLES.length)]
    if (Math.random() < 0.5) record.message = sentence(10, 120)
    if (Math.random() < 0.1) record.expiresAt = new Date(Date.now() + 30 * 86_400_000).toISOString()
    const cid = await cidOf(record)
    invites.push({ repo, rkey, ref: { uri: uri(repo, INVITE, rkey), cid }, subject, invitee, accepted: false })
    return { action: 'create', collection: INVITE, rkey, record, cid }
  }
  const pick = <T>(list: readonly T[]): T => list[rnd(list.length)] as T
  const removeAt = <T>(list: T[], i: number): T => {
    const [item] = list.splice(i, 1)
    return item as T
  }
  let onboarded = 0
  for (const slot of chiveSlots) {
    let repo: number
    let writes: PlannedWrite[]
    if (onboarded < T) {
      // Onboarding: a subject and an invite onto it, in one commit (the repo is tracked from here).
      repo = onboarded++
      const node = await newNode(repo)
      writes = [node, await newInvite(repo, (nodes[repo]?.at(-1) as { ref: Ref }).ref)]
    } else if (slot === N - 1) {
      // The last frame: an invite, which every consumer (the baseline's filter too) hands over.
      repo = rnd(T)
      writes = [await newInvite(repo, pick(nodes[repo] ?? []).ref)]
    } else {
      const roll = Math.random()
      const open = invites.filter((i) => !i.accepted && i.invitee < T)
      if (roll < 0.2) {
        repo = rnd(T)
        writes = [await newNode(repo)]
      } else if (roll < 0.6 || (roll < 0.85 && open.length === 0)) {
        repo = rnd(T)
        writes = [await newInvite(repo, pick(nodes[repo] ?? []).ref, Math.random() < 0.85)]
      } else if (roll < 0.85) {
        // The invitee accepts.
        const inv = pick(open)
        inv.accepted = true
        repo = inv.invitee
        const rkey = TID.nextStr()
        const record = { $type: ACCEPTANCE, invite: inv.ref, subject: inv.subject, createdAt: now() }
        acceptances.push({ repo, rkey })
        writes = [{ action: 'create', collection: ACCEPTANCE, rkey, record, cid: await cidOf(record) }]
      } else if (roll < 0.9) {
        // A subject edited: a new version of the node.
        repo = rnd(T)
        const node = pick(nodes[repo] ?? [])
        const record = { $type: NODE, title: sentence(10, 60), createdAt: now() }
        node.ref = { uri: node.ref.uri, cid: await cidOf(record) }
        writes = [{ action: 'update', collection: NODE, rkey: node.rkey, record, cid: node.ref.cid }]
      } else if (roll < 0.95 && invites.length > T) {
        // An inviter revokes an invite.
        const inv = removeAt(invites, rnd(invites.length))
        repo = inv.repo
        writes = [{ action: 'delete', collection: INVITE, rkey: inv.rkey }]
      } else if (acceptances.length > 0) {
        // A collaborator withdraws.
        const acc = removeAt(acceptances, rnd(acceptances.length))
        repo = acc.repo
        writes = [{ action: 'delete', collection: ACCEPTANCE, rkey: acc.rkey }]
      } else {
        repo = rnd(T)
        writes = [await newNode(repo)]
      }
    }
    planned.set(slot, writes)
    repoOf[slot] = repo
  }
  const t2 = performance.now()

  // --- the repos, built by workers (repo i by worker i % W)
  const W = Math.max(1, opts.workers ?? availableParallelism())
  const exported = await Promise.all(keys.map((k) => k.export()))
  const poolCommits = opts.poolCommits ?? 16
  const inputs: WorkerInput[] = Array.from({ length: W }, () => ({
    repos: [] as WorkerRepo[],
    firstSeq,
    tasks: new Int32Array(0),
    planned: new Map<number, PlannedWrite[]>(),
    deleteShare: opts.deleteShare ?? 0.1,
    updateShare: opts.updateShare ?? 0.05,
    check: Boolean(process.env.BENCH_CHECK),
  }))
  for (let i = 0; i < R; i++) {
    const tracked = i < T
    inputs[i % W]?.repos.push({
      index: i,
      did: dids[i] as string,
      priv: exported[i] as Uint8Array,
      records: between(tracked ? (opts.trackedRecords ?? [1000, 2000]) : (opts.untrackedRecords ?? [200, 1200])),
      poolCommits: tracked ? 0 : poolCommits,
    })
  }
  const tasks: number[][] = Array.from({ length: W }, () => [])
  for (let s = 0; s < N; s++) {
    if (kind[s] !== CHIVE && kind[s] !== BSKY) continue
    const w = (repoOf[s] as number) % W
    tasks[w]?.push(s, repoOf[s] as number)
    const writes = planned.get(s)
    if (writes) inputs[w]?.planned.set(s, writes)
  }
  inputs.forEach((input, w) => (input.tasks = Int32Array.from(tasks[w] ?? [])))

  const frames: Uint8Array[] = new Array(N)
  const mix: Record<string, number> = {}
  const pool: { frame: Uint8Array; seqAt: number; kind: string }[] = []
  const ops: Record<string, number> = {}
  const workerStats: { genesisMs: number; poolMs: number; trackedMs: number }[] = []
  await Promise.all(
    inputs.map(
      (input) =>
        new Promise<void>((resolve, reject) => {
          const worker = new Worker(new URL('./tracked-worker.ts', import.meta.url), { workerData: input })
          worker.on('message', (msg: WorkerMessage) => {
            if (msg.kind === 'frames') {
              msg.slots.forEach((slot, i) => {
                frames[slot] = new Uint8Array(msg.buffer, msg.offsets[i], (msg.offsets[i + 1] as number) - (msg.offsets[i] as number))
                const k = msg.kinds[i] as string
                mix[k] = (mix[k] ?? 0) + 1
              })
            } else if (msg.kind === 'pool') {
              msg.repos.forEach((_, i) => {
                const frame = new Uint8Array(msg.buffer, msg.offsets[i], (msg.offsets[i + 1] as number) - (msg.offsets[i] as number))
                pool.push({ frame, seqAt: msg.seqAt[i] as number, kind: msg.kinds[i] as string })
              })
            } else if (msg.kind === 'done') {
              for (const [k, n] of Object.entries(msg.stats.ops)) ops[k] = (ops[k] ?? 0) + n
              workerStats.push(msg.stats)
              void worker.terminate().then(() => resolve())
            } else {
              void worker.terminate()
              reject(new Error(`tracked-corpus worker: ${msg.message}`))
            }
          })
          worker.once('error', reject)
          worker.once('exit', (code) => code !== 0 && code !== 1 && reject(new Error(`tracked-corpus worker exited ${code}`)))
        }),
    ),
  )
  const t3 = performance.now()

  // --- the untracked part: pool replays with fresh seqs, #identity and #account events
  if (pool.length === 0) throw new Error('no untracked commits were built')
  const packer = new Packer()
  const identityHeader = encode({ op: 1, t: '#identity' })
  const accountHeader = encode({ op: 1, t: '#account' })
  let c = 0
  for (let s = 0; s < N; s++) {
    const k = kind[s]
    if (k === CHIVE || k === BSKY) continue
    const seq = firstSeq + s
    const did = dids[repoOf[s] as number] as string
    let label: string
    if (k === UNTRACKED) {
      const src = pool[c++ % pool.length] as (typeof pool)[number]
      const out = packer.take(src.frame.length)
      out.set(src.frame)
      new DataView(out.buffer, out.byteOffset).setUint32(src.seqAt, seq)
      frames[s] = out
      label = src.kind
    } else if (k === IDENTITY) {
      frames[s] = packer.frame(identityHeader, encode({ seq, did, handle: ids[repoOf[s] as number]?.handle as string, time: now() }))
      label = '#identity'
    } else {
      frames[s] = packer.frame(accountHeader, encode({ seq, did, active: true, time: now() }))
      label = '#account'
    }
    mix[label] = (mix[label] ?? 0) + 1
  }
  const t4 = performance.now()
  for (let s = 0; s < N; s++) if (!frames[s]) throw new Error(`slot ${s} got no frame`)
  const last = decodeFrame(frames[N - 1] as Uint8Array)
  if (last.type !== 'commit' || !last.ops.some((op) => op.path.startsWith(`${INVITE}/`))) throw new Error('the last frame is not an invite commit')
  const timings: Record<string, number> = {
    keysAndPlc: t1 - t0,
    plan: t2 - t1,
    workers: t3 - t2,
    genesis: Math.max(...workerStats.map((s) => s.genesisMs)),
    untrackedPool: Math.max(...workerStats.map((s) => s.poolMs)),
    trackedCommits: Math.max(...workerStats.map((s) => s.trackedMs)),
    assembly: t4 - t3,
  }
  if (process.env.BENCH_CHECK) timings.check = await checkFrames(frames, kind, keys, dids, firstSeq)
  const trackedFrames = kind.reduce((n, k) => n + (k === CHIVE || k === BSKY ? 1 : 0), 0)
  return {
    frames,
    lastSeq: firstSeq + N - 1,
    avgBytes: frames.reduce((n, f) => n + f.length, 0) / N,
    chiveFrames: chiveSlots.length,
    mix,
    trackedShare: trackedFrames / N,
    repos: R,
    trackedRepos: T,
    ops,
    timings,
  }
}

/**
 * BENCH_CHECK=1: every frame decodes and carries its seq; every tracked chain is unbroken (`since` = the previous rev, `prevData` = the
 * previous commit's data); a sample of tracked frames decodes with the indexer's `decodeFrame`,
 * has the commit as CAR root, a signature that verifies with the repo's key, and ops that are
 * in the signed tree and invert, over the CAR's blocks alone, down to `prevData`.
 */
const checkFrames = async (frames: Uint8Array[], kind: Uint8Array, keys: Secp256k1Keypair[], dids: string[], firstSeq: number): Promise<number> => {
  const t = performance.now()
  // Every frame decodes, in seq order without gaps (replays included: their seq is patched in place).
  for (const [s, f] of frames.entries()) {
    const evt = decodeFrame(f)
    if (!('seq' in evt) || evt.seq !== firstSeq + s) throw new Error(`check: slot ${s} does not carry seq ${firstSeq + s}`)
  }
  const keyOf = new Map(dids.map((d, i) => [d, (keys[i] as Secp256k1Keypair).did()]))
  const held = new Map<string, { rev: string; data: string }>()
  const tracked = [...kind.keys()].filter((s) => kind[s] === CHIVE || kind[s] === BSKY)
  const every = Math.max(1, Math.floor(tracked.length / 300))
  let sampled = 0
  for (const [n, s] of tracked.entries()) {
    const evt = decodeFrame(frames[s] as Uint8Array) as CommitEvent
    if (evt.type !== 'commit') throw new Error(`check: slot ${s} is not a commit`)
    const car = await readCarWithRoot(evt.blocks)
    if (!car.root.equals(evt.commit)) throw new Error(`check: slot ${s}: CAR root is not the commit`)
    const commit = cborToLex(car.blocks.get(car.root) as Uint8Array) as unknown as Commit
    if (commit.rev !== evt.rev || commit.did !== evt.repo) throw new Error(`check: slot ${s}: commit block does not match the event`)
    const prev = held.get(evt.repo)
    if (prev && (evt.since !== prev.rev || evt.prevData !== prev.data)) throw new Error(`check: slot ${s}: chain of ${evt.repo} broken`)
    held.set(evt.repo, { rev: evt.rev, data: commit.data.toString() })
    if (n % every !== 0 && s !== frames.length - 1) continue
    sampled++
    if (!(await verifyCommitSig(commit, keyOf.get(evt.repo) as string))) throw new Error(`check: slot ${s}: bad signature`)
    const body = [...decodeAll(frames[s] as Uint8Array)][1] as unknown as { ops: { action: string; path: string; cid: Cid | null; prev?: Cid }[]; prevData: Cid }
    let mst = MST.load(new MemoryBlockstore(car.blocks), commit.data)
    for (const op of body.ops) {
      const found = await mst.get(op.path)
      if (op.action === 'delete' ? found !== null : !found || !op.cid || !found.equals(op.cid)) throw new Error(`check: slot ${s}: ${op.action} ${op.path} not proven`)
    }
    for (const op of [...body.ops].reverse()) {
      if (op.action === 'create') mst = await mst.delete(op.path)
      else if (op.action === 'update') mst = await mst.update(op.path, op.prev as Cid)
      else mst = await mst.add(op.path, op.prev as Cid)
    }
    if (!(await mst.getPointer()).equals(body.prevData)) throw new Error(`check: slot ${s}: inverted ops do not reach prevData`)
  }
  const ms = performance.now() - t
  console.log(`BENCH_CHECK: ${tracked.length} tracked frames chained, ${sampled} verified and inverted to prevData (${(ms / 1000).toFixed(1)} s)`)
  return ms
}
