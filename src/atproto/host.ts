/** The client for repos' own hosts (DID documents name them): XRPC GETs, their failures as TransientError. */
import { TransientError } from '../lib/transient.ts'
import { parseRetryAfter } from '../lib/backoff.ts'

export { TransientError }

export type Fetch = (input: string | URL, init?: RequestInit) => Promise<Response>

/**
 * The longest a host's Retry-After keeps its repos and proofs waiting: the workers' own backoff
 * cap (config verify/backfill backoffMaxMs), so a host cannot hold anything back for longer.
 */
const RETRY_AFTER_MAX_MS = 60 * 60_000

export type XrpcAnswer = { ok: true; body: Uint8Array } | { ok: false; status: number; error: string }

/**
 * GETs an XRPC endpoint on a host named by a DID document. Network failures, 429 (with its
 * Retry-After) and 5xx become TransientError; 400/404 come back with their XRPC error name.
 */
export const xrpcGet = async (fetch: Fetch, url: URL): Promise<XrpcAnswer> => {
  let res: Response
  let body: Uint8Array
  try {
    // A DID document is anyone's to write: no redirects anywhere.
    res = await fetch(url, { redirect: 'error' })
    body = new Uint8Array(await res.arrayBuffer())
  } catch (err) {
    throw new TransientError('unreachable', `${url.host}: ${(err as Error).message}`)
  }
  if (res.status === 429) {
    throw new TransientError('rate-limited', `${url.host} answered 429`, parseRetryAfter(res.headers.get('retry-after'), { maxMs: RETRY_AFTER_MAX_MS }))
  }
  if (res.status === 400 || res.status === 404) {
    let error = ''
    try {
      error = String((JSON.parse(new TextDecoder().decode(body)) as { error?: unknown }).error ?? '')
    } catch {
      // not an XRPC error body
    }
    return { ok: false, status: res.status, error }
  }
  if (!res.ok) throw new TransientError(`http-${res.status}`, `${url.host} answered ${res.status}`)
  return { ok: true, body }
}
