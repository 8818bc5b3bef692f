/**
 * `pub.chive.sync.indexRecord` and `deleteRecord`: Chive's frontend asks for a record it has just
 * written (or deleted) so that its author sees the change before the stream brings it. Chive's
 * own AppView trusts the caller; here the caller only names a record: what is applied is what
 * the repo's host proves (a signed commit, the MST path, the block's hash: RecordProofs), as the
 * effect a proof of it on the stream would have (proof-effects.ts), and the answer comes after
 * the commit, so a query right after sees it.
 *
 * No fence: any replica may serve these, leader or not. Every effect goes through the record
 * rev guard at the proof's rev, so a proof applied here and the same record arriving from the
 * stream (older, equal or newer) settle to the newest whichever commits first.
 */
import type { FastifyInstance } from 'fastify'
import { AtUri } from '@atproto/syntax'
import type { Lexicons } from '@atproto/lexicon'
import { applyEffects } from '../db/store.ts'
import { CHIVE_PREFIX, type Effect, type InviteWrite } from '../db/effects.ts'
import { isRepoDid } from '../atproto/keys.ts'
import type { RecordProof } from '../atproto/record-proof.ts'
import { TransientError } from '../lib/transient.ts'
import { WindowCounter } from '../lib/limits.ts'
import { proofEffect } from '../pipeline/proof-effects.ts'
import type { ApiContext } from './context.ts'
import { forbidden, invalidRequest, notFound, rateLimited, upstreamFailure } from './errors.ts'
import { defined } from './params.ts'

const INDEX_RECORD = 'pub.chive.sync.indexRecord'
const DELETE_RECORD = 'pub.chive.sync.deleteRecord'

/** Each call costs the host a proof and us a write: a caller gets this many per window. */
const CALLS_PER_WINDOW = 60
const WINDOW_MS = 60_000

interface Target {
  uri: string
  did: string
  collection: string
  rkey: string
}

const target = (lexicons: Lexicons, nsid: string, body: unknown): Target => {
  try {
    lexicons.assertValidXrpcInput(nsid, body)
  } catch (err) {
    throw invalidRequest((err as Error).message)
  }
  const uri = (body as { uri: string }).uri
  let at: AtUri
  try {
    at = new AtUri(uri)
  } catch (err) {
    throw invalidRequest(`not an AT URI: ${(err as Error).message}`)
  }
  if (!isRepoDid(at.host)) throw invalidRequest('the URI must name its repo by DID (did:plc or did:web)')
  if (!at.collection.startsWith(CHIVE_PREFIX)) throw invalidRequest(`${at.collection || 'the URI'} is not a Chive collection (${CHIVE_PREFIX}*)`)
  if (!at.rkey) throw invalidRequest('the URI must name a record')
  return { uri: `at://${at.host}/${at.collection}/${at.rkey}`, did: at.host, collection: at.collection, rkey: at.rkey }
}

export const registerSync = (app: FastifyInstance, ctx: ApiContext): void => {
  const prover = ctx.records
  if (!prover) return
  const limit = new WindowCounter(CALLS_PER_WINDOW, WINDOW_MS)

  /** The record's repo or a moderator; anyone else is refused before the host is asked. */
  const authorize = async (authorization: string | undefined, nsid: string, t: Target): Promise<void> => {
    const caller = await ctx.auth.verify(authorization, nsid)
    if (caller !== t.did && !ctx.admin.moderatorDids.includes(caller)) {
      throw forbidden(`only the record's repo (${t.did}) or a moderator may ask for it`)
    }
    const wait = limit.take(caller)
    if (wait > 0) throw rateLimited(`at most ${CALLS_PER_WINDOW} sync calls per ${WINDOW_MS / 1000} s per caller`, wait)
  }

  /** The proof, or an UpstreamFailure when the host's answer proves nothing (nothing is changed). */
  const prove = async (t: Target): Promise<RecordProof | 'no-proof'> => {
    const ask = () => prover.prove(t.did, t.collection, t.rkey)
    try {
      try {
        return await ask()
      } catch (err) {
        // The repo's key was not held yet: its fetch has started; one wait, then the proof.
        if (err instanceof TransientError && err.ready && (await err.ready)) return await ask()
        throw err
      }
    } catch (err) {
      if (err instanceof TransientError) throw upstreamFailure(`the repo's host gave no proof of ${t.uri}: ${err.message}`)
      throw err
    }
  }

  const at = (t: Target, operation: 'update' | 'delete') => ({ did: t.did, collection: t.collection, rkey: t.rkey, seq: null, operation })

  app.post(`/xrpc/${INDEX_RECORD}`, async (req) => {
    const t = target(ctx.lexicons, INDEX_RECORD, req.body)
    await authorize(req.headers.authorization, INDEX_RECORD, t)
    const proof = await prove(t)
    if (proof === 'no-proof') throw notFound(`${t.uri}: its host has no such record (and showed no proof to act on)`)
    const effect = proofEffect(ctx.lexicons, at(t, 'update'), proof)
    const effects: Effect[] = [effect]
    // An invite is served once its subject's version is proven: when the subject's host shows
    // that version now, it goes first, so the invite is listed on this call.
    if (effect.kind === 'invite') effects.unshift(...(await subjectEffects(effect)))
    await applyEffects(ctx.pool, effects)
    if (proof.found === null) throw notFound(`${t.uri}: its repo proves it absent at ${proof.rev}; dropped if it was held`)
    if (effect.kind === 'rejection') return { uri: t.uri, indexed: false, error: `${effect.reason}: ${effect.detail ?? ''}`.trim() }
    return defined({ uri: t.uri, indexed: true, cid: proof.found.cid })
  })

  /** The invite's subject as its host proves it, when it holds the version the invite names. */
  const subjectEffects = async (invite: InviteWrite): Promise<Effect[]> => {
    const subject = new AtUri(invite.subjectUri)
    if (!isRepoDid(subject.host) || !subject.collection.startsWith(CHIVE_PREFIX) || !subject.rkey) return []
    try {
      const proof = await prove({ uri: invite.subjectUri, did: subject.host, collection: subject.collection, rkey: subject.rkey })
      // Anything else (absent, another version, no answer) is the verifier's to settle, as for the stream.
      if (proof === 'no-proof' || proof.found?.cid !== invite.subjectCid) return []
      return [proofEffect(ctx.lexicons, { did: subject.host, collection: subject.collection, rkey: subject.rkey, seq: null, operation: 'update' }, proof)]
    } catch {
      return []
    }
  }

  app.post(`/xrpc/${DELETE_RECORD}`, async (req) => {
    const t = target(ctx.lexicons, DELETE_RECORD, req.body)
    await authorize(req.headers.authorization, DELETE_RECORD, t)
    const proof = await prove(t)
    if (proof === 'no-proof') return { uri: t.uri, deleted: false, error: 'its host answered RecordNotFound without a proof of absence' }
    if (proof.found !== null) {
      return { uri: t.uri, deleted: false, error: `the record still exists in its repo at ${proof.rev} (${proof.found.cid})` }
    }
    await applyEffects(ctx.pool, [proofEffect(ctx.lexicons, at(t, 'delete'), proof)])
    return { uri: t.uri, deleted: true }
  })
}
