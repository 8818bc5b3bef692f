/**
 * What a proven record means for the index: the effect of a record as its repo's host's signed
 * tree shows it (record-proof.ts). Shared by Jetstream's events and the API's sync methods, so a
 * record proven on request is applied exactly as one proven for the stream.
 */
import { OUR_COLLECTIONS, type Collection, type Effect } from '../db/effects.ts'
import type { Lexicons } from '@atproto/lexicon'
import type { RecordProof } from '../atproto/record-proof.ts'
import { recordEffect } from './record.ts'

export interface ProvenPath {
  did: string
  collection: string
  rkey: string
  /** The stream position it came with; null when asked for outside the stream. */
  seq: number | null
  /** What the record's source said happened to it; a subject proven present is at least updated. */
  operation: 'create' | 'update' | 'delete'
}

/** The effect of the proof, at the proof's rev (through the record rev guard). */
export const proofEffect = (lexicons: Lexicons, at: ProvenPath, proof: RecordProof): Effect => {
  const uri = `at://${at.did}/${at.collection}/${at.rkey}`
  const found = proof.found
  if (!OUR_COLLECTIONS.has(at.collection)) {
    const action = found === null ? 'delete' : at.operation === 'delete' ? 'update' : at.operation
    return { kind: 'subject', uri, repo: at.did, collection: at.collection, rev: proof.rev, seq: at.seq, action, cid: found?.cid ?? null }
  }
  const collection = at.collection as Collection
  if (found === null) return { kind: 'delete', uri, collection, repo: at.did, rev: proof.rev, seq: at.seq }
  return recordEffect(lexicons, { uri, repo: at.did, collection, rev: proof.rev, seq: at.seq, cid: found.cid }, found.record)
}
