import { ACCEPTANCE_NSID, INVITE_NSID } from '../db/effects.ts'

/** Where a discovery stands, per source: a page cursor, '' before the first page, null when done. */
export type DiscoveryProgress = Record<string, string | null>

export interface DiscoveryPage {
  dids: string[]
  progress: DiscoveryProgress
  done: boolean
}

const COLLECTIONS = [INVITE_NSID, ACCEPTANCE_NSID]

/** fetch's own message is a bare "fetch failed": the reason is in its cause. */
const describeFailure = (err: unknown): string => {
  const e = err as Error & { cause?: { code?: unknown; message?: unknown } }
  const cause = e.cause
  const detail = cause ? [cause.code, cause.message].filter((p) => typeof p === 'string' && p !== '').join(': ') : ''
  return detail && detail !== e.message ? `${e.message} (${detail})` : e.message
}

const getJson = async (url: URL): Promise<{ status: number; body: Record<string, unknown> }> => {
  let res: Response
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(30_000) })
  } catch (err) {
    throw new Error(`${url.href}: ${describeFailure(err)}`, { cause: err })
  }
  const text = await res.text()
  let body: Record<string, unknown> = {}
  try {
    body = JSON.parse(text) as Record<string, unknown>
  } catch {
    // not JSON: judged by status below
  }
  if (res.status === 429 || res.status >= 500) throw new Error(`${url.href} answered ${res.status}`)
  return { status: res.status, body }
}

// A PDS does not serve listReposByCollection: it answers 404/501, or (proxying unknown methods
// to an AppView) asks for auth.
const notImplemented = (status: number, body: Record<string, unknown>) =>
  [401, 403, 404, 501].includes(status) || body.error === 'MethodNotImplemented' || body.error === 'XRPCNotSupported'

/**
 * One page of the repos that hold our collections, from the relay's
 * `com.atproto.sync.listReposByCollection`. A host without it (a PDS) is enumerated with
 * `com.atproto.sync.listRepos` and `com.atproto.repo.describeRepo` instead.
 */
export const discoverPage = async (baseUrl: string, progress: DiscoveryProgress): Promise<DiscoveryPage> => {
  const next: DiscoveryProgress = { ...progress }
  if (next.listRepos === undefined) {
    for (const collection of COLLECTIONS) {
      const cursor = next[collection]
      if (cursor === null) continue
      const url = new URL('/xrpc/com.atproto.sync.listReposByCollection', baseUrl)
      url.searchParams.set('collection', collection)
      url.searchParams.set('limit', '2000')
      if (cursor) url.searchParams.set('cursor', cursor)
      const { status, body } = await getJson(url)
      if (notImplemented(status, body)) {
        next.listRepos = ''
        break
      }
      if (status !== 200) throw new Error(`listReposByCollection answered ${status} ${String(body.error ?? '')}`)
      const repos = Array.isArray(body.repos) ? (body.repos as { did?: unknown }[]) : []
      next[collection] = typeof body.cursor === 'string' && repos.length > 0 ? body.cursor : null
      return { dids: repos.map((r) => r.did).filter((d): d is string => typeof d === 'string'), progress: next, done: false }
    }
    if (next.listRepos === undefined) return { dids: [], progress: next, done: true }
  }
  if (next.listRepos === null) return { dids: [], progress: next, done: true }
  const url = new URL('/xrpc/com.atproto.sync.listRepos', baseUrl)
  url.searchParams.set('limit', '500')
  if (next.listRepos) url.searchParams.set('cursor', next.listRepos)
  const { status, body } = await getJson(url)
  if (status !== 200) throw new Error(`listRepos answered ${status} ${String(body.error ?? '')}`)
  const repos = (Array.isArray(body.repos) ? body.repos : []) as { did?: unknown; active?: unknown }[]
  const dids: string[] = []
  for (const repo of repos) {
    if (typeof repo.did !== 'string' || repo.active === false) continue
    const describe = new URL('/xrpc/com.atproto.repo.describeRepo', baseUrl)
    describe.searchParams.set('repo', repo.did)
    const d = await getJson(describe)
    const collections = Array.isArray(d.body.collections) ? (d.body.collections as unknown[]) : []
    if (COLLECTIONS.some((c) => collections.includes(c))) dids.push(repo.did)
  }
  next.listRepos = typeof body.cursor === 'string' && repos.length > 0 ? body.cursor : null
  return { dids, progress: next, done: next.listRepos === null }
}
