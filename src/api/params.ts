import type { Lexicons } from '@atproto/lexicon'
import { invalidRequest } from './errors.ts'
import type { InviteState } from '../db/queries.ts'

type Query = Record<string, string | string[] | undefined>

/** One query parameter, given at most once. */
export const single = (query: Query, name: string): string | undefined => {
  const v = query[name]
  if (Array.isArray(v)) throw invalidRequest(`${name} must be given once`)
  return v
}

export const integer = (query: Query, name: string): number | undefined => {
  const raw = single(query, name)
  if (raw === undefined) return undefined
  if (!/^-?\d{1,9}$/.test(raw)) throw invalidRequest(`${name} must be an integer`)
  return Number(raw)
}

/** Checks parameters against the method's lexicon (formats, ranges, required fields). */
export const assertParams = (lex: Lexicons, nsid: string, params: Record<string, unknown>): void => {
  try {
    lex.assertValidXrpcParams(nsid, params)
  } catch (err) {
    throw invalidRequest((err as Error).message)
  }
}

/** Drops undefined entries so that absent optional fields are omitted, never null. */
export const defined = <T extends Record<string, unknown>>(obj: T): T =>
  Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined && v !== null)) as T

const STATES = new Set<string>(['pending', 'accepted', 'rejected', 'expired', 'all'])

/** The `state` filter of invite queries; absent means all. */
export const stateParam = (value: string | undefined): InviteState | 'all' => {
  const state = value ?? 'all'
  if (!STATES.has(state)) throw invalidRequest(`state must be one of ${[...STATES].join(', ')}`)
  return state as InviteState | 'all'
}
