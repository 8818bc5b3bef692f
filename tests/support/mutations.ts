import fc from 'fast-check'
import { decodeAll, encode } from '@atproto/lex-cbor'
import type { Cid, LexValue } from '@atproto/lex-data'

/** The run's seed: FUZZ_SEED when set, otherwise a fresh one, printed so a failure can be replayed. */
export const fuzzSeed = (name: string): number => {
  const fromEnv = process.env.FUZZ_SEED
  const seed = fromEnv ? Number(fromEnv) : Math.floor(Math.random() * 2 ** 31)
  console.log(`${name}: seed ${seed} (replay with FUZZ_SEED=${seed})`)
  return seed
}

/** A hostile copy of a frame and how it was made (for the failure report). */
export interface Mutant {
  kind: string
  bytes: Uint8Array
}

const concat = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts))

// Past the sizes the decoder or the database would accept for a DID, a path or a message.
const HUGE_STRING = 'x'.repeat(300_000)
const HUGE_BYTES = new Uint8Array(600_000).fill(0xa5)

/** Values of the wrong type or size for any field: what a broken or malicious relay might send. */
const hostileValue = (cids: readonly Cid[]): fc.Arbitrary<LexValue | undefined> =>
  fc.oneof(
    fc.constant(undefined),
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: -(2 ** 31), max: 2 ** 31 }),
    fc.constantFrom(Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 0, -1),
    fc.string({ unit: 'grapheme', maxLength: 40 }),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.constantFrom('did:plc:', 'did:plc:' + 'a'.repeat(5000), '3jzfcijpj2z2a', 'at://x/y/z', '#commit', ''),
    fc.uint8Array({ maxLength: 48 }),
    fc.array(fc.oneof(fc.integer(), fc.string({ maxLength: 8 }), fc.constant(null)), { maxLength: 6 }),
    fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.integer(), fc.string({ maxLength: 8 })), { maxKeys: 4 }),
    fc.constant(HUGE_STRING),
    fc.constant(HUGE_BYTES),
    fc.constantFrom(...cids),
  )

const FIELD_NAMES = ['seq', 'repo', 'did', 'rev', 'since', 'prevData', 'commit', 'blocks', 'ops', 'time', 'active', 'status', 'name', 'error', 'message']

const reencode = (header: Record<string, unknown>, body: Record<string, unknown>): Uint8Array | null => {
  try {
    return concat(encode(header as LexValue), encode(body as LexValue))
  } catch {
    // The AT data model has no floats or unsafe integers: such values are made with raw bytes.
    return null
  }
}

/** Field-level mutations: a header or body field (or an op's field) replaced by a hostile value. */
const structural = (base: Uint8Array, cids: readonly Cid[]): fc.Arbitrary<Mutant> => {
  const [header, body] = [...decodeAll(base)] as Record<string, unknown>[]
  if (!header || !body) throw new Error('base frames must be valid')
  const keys = [...new Set([...Object.keys(body), ...FIELD_NAMES, 'unexpected'])]
  const value = hostileValue(cids)
  const set = (obj: Record<string, unknown>, key: string, v: LexValue | undefined) => {
    const copy = { ...obj }
    if (v === undefined) delete copy[key]
    else copy[key] = v
    return copy
  }
  const opsOf = Array.isArray(body.ops) ? (body.ops as Record<string, unknown>[]) : []
  const options: fc.Arbitrary<[string, Uint8Array | null]>[] = [
    fc.tuple(fc.constantFrom(...keys), value).map(([k, v]) => [`body.${k}`, reencode(header, set(body, k, v))]),
    fc.tuple(fc.constantFrom('op', 't'), value).map(([k, v]) => [`header.${k}`, reencode(set(header, k, v), body)]),
    fc.constantFrom('#commit', '#sync', '#identity', '#account', '#info', '#handle', '#tombstone').map((t) => [
      'header.t swapped',
      reencode({ ...header, t }, body),
    ]),
  ]
  if (opsOf.length > 0) {
    options.push(
      fc
        .tuple(fc.nat({ max: opsOf.length - 1 }), fc.constantFrom('action', 'path', 'cid', 'prev'), value)
        .map(([i, k, v]) => [
          `op.${k}`,
          reencode(header, { ...body, ops: opsOf.map((op, j) => (j === i ? set(op, k, v) : op)) }),
        ]),
    )
  }
  return fc
    .oneof(...options)
    .filter((m): m is [string, Uint8Array] => m[1] !== null)
    .map(([kind, bytes]) => ({ kind, bytes }))
}

/** Byte-level mutations: truncation, bit flips, insertions, deletions, splices, trailing bytes. */
const byteLevel = (base: Uint8Array, others: readonly Uint8Array[]): fc.Arbitrary<Mutant> =>
  fc.oneof(
    fc.nat({ max: base.length - 1 }).map((n) => ({ kind: 'truncated', bytes: base.slice(0, n) })),
    fc
      .array(fc.tuple(fc.nat({ max: base.length - 1 }), fc.nat({ max: 7 })), { minLength: 1, maxLength: 16 })
      .map((flips) => {
        const copy = base.slice()
        for (const [i, bit] of flips) copy[i] = (copy[i] as number) ^ (1 << bit)
        return { kind: 'bit-flips', bytes: copy }
      }),
    // Header bytes decide how the rest is read: flips there reach the most decoder paths.
    fc.tuple(fc.nat({ max: Math.min(base.length - 1, 24) }), fc.nat({ max: 255 })).map(([i, v]) => {
      const copy = base.slice()
      copy[i] = v
      return { kind: 'head-byte', bytes: copy }
    }),
    fc
      .tuple(fc.nat({ max: base.length }), fc.uint8Array({ minLength: 1, maxLength: 64 }))
      .map(([at, ins]) => ({ kind: 'inserted', bytes: concat(base.slice(0, at), ins, base.slice(at)) })),
    fc
      .tuple(fc.nat({ max: base.length - 1 }), fc.integer({ min: 1, max: 64 }))
      .map(([at, n]) => ({ kind: 'deleted', bytes: concat(base.slice(0, at), base.slice(at + n)) })),
    fc
      .tuple(fc.nat({ max: base.length }), fc.constantFrom(...others), fc.nat())
      .map(([at, other, from]) => ({ kind: 'spliced', bytes: concat(base.slice(0, at), other.slice(from % other.length)) })),
    fc.uint8Array({ minLength: 1, maxLength: 32 }).map((extra) => ({ kind: 'trailing', bytes: concat(base, extra) })),
  )

/** Any hostile variant of any of the given valid frames. */
export const mutantOf = (bases: readonly Uint8Array[], cids: readonly Cid[]): fc.Arbitrary<Mutant> =>
  fc.constantFrom(...bases).chain((base) => fc.oneof(byteLevel(base, bases), structural(base, cids)))
