import { createPublicKey, verify, type KeyObject } from 'node:crypto'
import { parseDidKey } from '@atproto/crypto'
import { encode } from '@atproto/lex-cbor'
import type { LexValue } from '@atproto/lex-data'

// SPKI DER pieces: id-ecPublicKey and the curve of each atproto key type.
const EC_PUBLIC_KEY = Buffer.from('06072a8648ce3d0201', 'hex')
const CURVES: Record<string, { oid: Buffer; halfOrder: bigint }> = {
  ES256K: {
    oid: Buffer.from('06052b8104000a', 'hex'),
    halfOrder: 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n >> 1n,
  },
  ES256: {
    oid: Buffer.from('06082a8648ce3d030107', 'hex'),
    halfOrder: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n >> 1n,
  },
}

const der = (tag: number, body: Buffer): Buffer => {
  if (body.length > 127) throw new Error('key too long')
  return Buffer.concat([Buffer.from([tag, body.length]), body])
}

interface ParsedKey {
  key: KeyObject
  halfOrder: bigint
}

const MAX_CACHED = 50_000
const cache = new Map<string, ParsedKey>()

const parse = (didKey: string): ParsedKey => {
  const hit = cache.get(didKey)
  if (hit) return hit
  const { jwtAlg, keyBytes } = parseDidKey(didKey)
  const curve = CURVES[jwtAlg]
  if (!curve) throw new Error(`unsupported key type ${jwtAlg}`)
  const spki = der(0x30, Buffer.concat([der(0x30, Buffer.concat([EC_PUBLIC_KEY, curve.oid])), der(0x03, Buffer.concat([Buffer.from([0]), Buffer.from(keyBytes)]))]))
  const parsed = { key: createPublicKey({ key: spki, format: 'der', type: 'spki' }), halfOrder: curve.halfOrder }
  if (cache.size >= MAX_CACHED) cache.clear()
  cache.set(didKey, parsed)
  return parsed
}

/**
 * Verifies an atproto signature (compact r||s, low-S, over SHA-256) with Node's OpenSSL bindings:
 * the same rules as `@atproto/crypto`'s verifier (which rejects DER and high-S signatures), several
 * times faster than its pure-JS curves, with the parsed key cached.
 */
export const verifyDidSignature = (didKey: string, data: Uint8Array, sig: Uint8Array): boolean => {
  if (sig.length !== 64) return false
  let parsed: ParsedKey
  try {
    parsed = parse(didKey)
  } catch {
    return false
  }
  const s = BigInt(`0x${Buffer.from(sig.subarray(32)).toString('hex')}`)
  if (s === 0n || s > parsed.halfOrder) return false
  try {
    return verify('sha256', data, { key: parsed.key, dsaEncoding: 'ieee-p1363' }, sig)
  } catch {
    return false
  }
}

/** A signed repo commit's signature, checked against a did:key. */
export const verifyCommitSignature = (commit: { sig: Uint8Array } & Record<string, unknown>, didKey: string): boolean => {
  const { sig, ...unsigned } = commit
  return verifyDidSignature(didKey, encode(unsigned as LexValue), sig)
}
