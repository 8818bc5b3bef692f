/** Handles beside DIDs on the dashboard, from the DID documents the service already resolves. */
import { parseToAtprotoDocument, type IdResolver } from '@atproto/identity'
import { isValidHandle } from '@atproto/syntax'
import { KeyedLimiter } from '../../lib/limits.ts'
import { Lru } from '../../lib/lru.ts'

/** DID -> the handle its document claims (`alsoKnownAs` at://…); DIDs without one are absent. */
export type Handles = ReadonlyMap<string, string>

export const NO_HANDLES: Handles = new Map()

export interface HandleNamesOptions {
  /** How long a page waits for documents it does not have; the rest are shown as DIDs alone. */
  waitMs?: number
  /** How long a handle (or the lack of one) is kept before the document is asked again. */
  ttlMs?: number
  /** Documents fetched at once for the dashboard, so that a page of new DIDs cannot flood the PLC. */
  concurrency?: number
}

/**
 * Through the service's resolver, so through its DID cache: the documents the ingest fetched
 * answer at once. A slow or unreachable PLC delays a page by `waitMs` at most; the fetches go on
 * in the background, and the next page view shows what they found.
 */
export class HandleNames {
  private readonly resolver: Pick<IdResolver, 'did'>
  private readonly known = new Lru<string, { handle: string | null; until: number }>(10_000)
  private readonly inFlight = new Map<string, Promise<void>>()
  private readonly limiter: KeyedLimiter
  private readonly waitMs: number
  private readonly ttlMs: number

  constructor(resolver: Pick<IdResolver, 'did'>, opts: HandleNamesOptions = {}) {
    this.resolver = resolver
    this.waitMs = opts.waitMs ?? 300
    this.ttlMs = opts.ttlMs ?? 10 * 60_000
    this.limiter = new KeyedLimiter(opts.concurrency ?? 8)
  }

  /** The handles of `dids` known within `waitMs`. */
  async of(dids: Iterable<string>): Promise<Handles> {
    const wanted = [...new Set(dids)].filter((d) => d.startsWith('did:'))
    const missing = wanted.filter((d) => !this.fresh(d))
    if (missing.length > 0) {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        Promise.all(missing.map((d) => this.lookUp(d))),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, this.waitMs)
          timer.unref()
        }),
      ])
      clearTimeout(timer)
    }
    const found = new Map<string, string>()
    for (const did of wanted) {
      const handle = this.known.get(did)?.handle
      if (handle) found.set(did, handle)
    }
    return found
  }

  private fresh(did: string): boolean {
    const entry = this.known.get(did)
    return entry !== undefined && Date.now() < entry.until
  }

  private lookUp(did: string): Promise<void> {
    let pending = this.inFlight.get(did)
    if (!pending) {
      pending = this.limiter
        .run('identity', async () => {
          try {
            const doc = await this.resolver.did.resolve(did)
            const claimed = doc ? parseToAtprotoDocument(doc).handle : undefined
            this.known.set(did, { handle: claimed && isValidHandle(claimed) ? claimed : null, until: Date.now() + this.ttlMs })
          } catch {
            // Unknown for now: the DID is shown alone, and asked again within a minute.
            this.known.set(did, { handle: null, until: Date.now() + Math.min(this.ttlMs, 60_000) })
          }
        })
        .finally(() => this.inFlight.delete(did))
      this.inFlight.set(did, pending)
    }
    return pending
  }
}
