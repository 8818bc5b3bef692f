import WebSocket, { WebSocketServer } from 'ws'
import { decodeAll, encode } from '@atproto/lex-cbor'
import type { Cid, LexValue } from '@atproto/lex-data'
import { cborToLex, readCarWithRoot } from '@atproto/repo'

/** A `#commit` body as the PDS sent it, decoded with `@atproto/lex-cbor` (CIDs as `Cid`). */
export interface CommitBody {
  seq: number
  repo: string
  rev: string
  since: string | null
  prevData?: Cid
  commit: Cid
  blocks: Uint8Array
  ops: { action: string; path: string; cid: Cid | null; prev?: Cid }[]
  [key: string]: unknown
}

/**
 * What the relay does to the commit a rule matches:
 * - `strip-op`: the ops at `path` are left out of `ops`; the blocks (and so the signed commit and
 *   its tree) stay as they are, so the commit no longer says everything it did.
 * - `drop`: the commit is not delivered; nothing else changes, so the repo's next commit names
 *   the missing one as its `since` (an honest gap).
 * - `drop-and-splice`: the commit is not delivered, and the repo's next commit is rewritten so
 *   that its `since` and `prevData` are those of the last commit delivered: the chain looks whole
 *   and only the tree can tell.
 */
export type Tamper =
  | { kind: 'strip-op'; path: string }
  | { kind: 'drop' }
  | { kind: 'drop-and-splice' }
  /** The commit is delivered as `body` makes it (a forgery of any repo's commit, at the commit's seq). */
  | { kind: 'replace'; body: (commit: CommitBody) => Promise<Record<string, unknown>> }

export interface TamperReport {
  kind: Tamper['kind']
  /** The seq of the commit the rule matched. */
  seq: number
  rev: string
  /** For `drop-and-splice`: the next commit, as rewritten. */
  spliced?: { seq: number; rev: string; since: string; prevData: string; originalSince: string | null; originalPrevData: string | null }
}

export interface TamperRelay {
  url: string
  stats: { upstreamFrames: number; delivered: number; dropped: number; altered: number; connections: number }
  /** The `cursor` of each subscription so far (null when absent). */
  cursors: (string | null)[]
  /**
   * Alters the first commit of `repo` (from now on) that `match` accepts. Resolves once it was
   * applied (for `drop-and-splice`: once the repo's next commit was rewritten too).
   */
  tamper(repo: string, match: (commit: CommitBody) => boolean, tamper: Tamper): Promise<TamperReport>
  close(): Promise<void>
}

interface Rule {
  repo: string
  match: (commit: CommitBody) => boolean
  tamper: Tamper
  resolve: (r: TamperReport) => void
  reject: (err: Error) => void
}

const frameOf = (header: unknown, body: unknown): Uint8Array =>
  new Uint8Array(Buffer.concat([encode(header as LexValue), encode(body as LexValue)]))

/** The MST root (`data`) of the signed commit a commit's CAR carries. */
export const commitDataOf = async (blocks: Uint8Array): Promise<Cid> => {
  const car = await readCarWithRoot(blocks)
  const bytes = car.blocks.get(car.root)
  if (!bytes) throw new Error('the CAR lacks its root block')
  return (cborToLex(bytes) as { data: Cid }).data
}

/** True when the commit deletes the record at `path`. */
export const deletes = (path: string) => (c: CommitBody): boolean => c.ops.some((op) => op.action === 'delete' && op.path === path)

/**
 * A relay stand-in between a real PDS's firehose and a consumer: it follows the PDS's
 * `subscribeRepos` from `cursor`, keeps what it delivered, and serves it to subscribers honouring
 * their `cursor` (events after it), then live. Frames pass byte for byte unless a rule alters
 * them (re-encoded with `@atproto/lex-cbor`); what was altered or dropped stays so on replays.
 */
export const startTamperRelay = async (upstreamWsUrl: string, cursor: number): Promise<TamperRelay> => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/xrpc/com.atproto.sync.subscribeRepos' })
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()))
  const history: { seq: number; bytes: Uint8Array }[] = []
  const stats = { upstreamFrames: 0, delivered: 0, dropped: 0, altered: 0, connections: 0 }
  const cursors: (string | null)[] = []
  const rules: Rule[] = []
  /** Repos whose next commit must be spliced onto the last one delivered. */
  const splicing = new Map<string, { rule: Rule; report: TamperReport }>()
  /** The last commit delivered per repo: its rev and CAR (decoded only when a splice needs it). */
  const lastDelivered = new Map<string, { rev: string; blocks: Uint8Array }>()
  let upstreamSeq = cursor
  let closed = false

  wss.on('connection', (ws, req) => {
    stats.connections++
    const raw = new URL(req.url ?? '/', 'http://x').searchParams.get('cursor')
    cursors.push(raw)
    // Synchronous with delivery (which only runs between messages): nothing missed or repeated.
    if (raw !== null) for (const f of history) if (f.seq > Number(raw)) ws.send(f.bytes, { binary: true })
  })

  const deliver = (bytes: Uint8Array, seq: number | undefined) => {
    if (seq !== undefined) history.push({ seq, bytes })
    stats.delivered++
    for (const client of wss.clients) if (client.readyState === WebSocket.OPEN) client.send(bytes, { binary: true })
  }

  const handle = async (bytes: Uint8Array) => {
    stats.upstreamFrames++
    const [header, body] = [...decodeAll(bytes)] as [Record<string, unknown>, Record<string, unknown>]
    const seq = typeof body?.seq === 'number' ? body.seq : undefined
    if (seq !== undefined) upstreamSeq = seq
    if (header?.t !== '#commit' || !body) return deliver(bytes, seq)
    const commit = body as unknown as CommitBody
    const pendingSplice = splicing.get(commit.repo)
    if (pendingSplice) {
      splicing.delete(commit.repo)
      const last = lastDelivered.get(commit.repo)
      if (!last) {
        pendingSplice.rule.reject(new Error(`no commit of ${commit.repo} was delivered to splice onto`))
      } else {
        const prevData = await commitDataOf(last.blocks)
        const rewritten = { ...commit, since: last.rev, prevData }
        stats.altered++
        lastDelivered.set(commit.repo, { rev: commit.rev, blocks: commit.blocks })
        deliver(frameOf(header, rewritten), seq)
        pendingSplice.rule.resolve({
          ...pendingSplice.report,
          spliced: {
            seq: commit.seq,
            rev: commit.rev,
            since: last.rev,
            prevData: prevData.toString(),
            originalSince: commit.since,
            originalPrevData: commit.prevData?.toString() ?? null,
          },
        })
        return
      }
    }
    const i = rules.findIndex((r) => r.repo === commit.repo && r.match(commit))
    const rule = i === -1 ? undefined : rules.splice(i, 1)[0]
    if (!rule) {
      lastDelivered.set(commit.repo, { rev: commit.rev, blocks: commit.blocks })
      return deliver(bytes, seq)
    }
    const report: TamperReport = { kind: rule.tamper.kind, seq: commit.seq, rev: commit.rev }
    switch (rule.tamper.kind) {
      case 'strip-op': {
        const path = rule.tamper.path
        stats.altered++
        lastDelivered.set(commit.repo, { rev: commit.rev, blocks: commit.blocks })
        deliver(frameOf(header, { ...commit, ops: commit.ops.filter((op) => op.path !== path) }), seq)
        rule.resolve(report)
        return
      }
      case 'replace':
        stats.altered++
        deliver(frameOf(header, await rule.tamper.body(commit)), seq)
        rule.resolve(report)
        return
      case 'drop':
        stats.dropped++
        rule.resolve(report)
        return
      case 'drop-and-splice':
        stats.dropped++
        splicing.set(commit.repo, { rule, report })
        return
    }
  }

  // Frames are handled one at a time, in the order the PDS sent them.
  let chain: Promise<void> = Promise.resolve()
  let upstream: WebSocket
  const connect = (from: number) =>
    new Promise<void>((resolve, reject) => {
      upstream = new WebSocket(`${upstreamWsUrl}/xrpc/com.atproto.sync.subscribeRepos?cursor=${from}`)
      upstream.once('open', () => resolve())
      upstream.once('error', reject)
      upstream.on('error', () => {})
      upstream.on('message', (data: Buffer) => {
        const bytes = new Uint8Array(data)
        chain = chain.then(() => handle(bytes)).catch((err: unknown) => {
          console.error('tamper relay: frame not handled', err)
        })
      })
      upstream.on('close', () => {
        // The PDS went away: follow it again from the last seq read, as a relay would.
        if (!closed) setTimeout(() => void chain.then(() => connect(upstreamSeq)).catch(() => {}), 200)
      })
    })
  await connect(cursor)

  const { port } = wss.address() as { port: number }
  return {
    url: `ws://127.0.0.1:${port}`,
    stats,
    cursors,
    tamper(repo, match, tamper) {
      const applied = new Promise<TamperReport>((resolve, reject) => {
        rules.push({ repo, match, tamper, resolve, reject })
      })
      // A test that fails before awaiting it must not also leave a rejection unhandled.
      applied.catch(() => {})
      return applied
    },
    close: () =>
      new Promise<void>((resolve) => {
        closed = true
        upstream.terminate()
        for (const rule of rules.splice(0)) rule.reject(new Error('relay closed before the rule applied'))
        for (const { rule } of splicing.values()) rule.reject(new Error('relay closed before the splice applied'))
        for (const client of wss.clients) client.terminate()
        wss.close(() => resolve())
      }),
  }
}
