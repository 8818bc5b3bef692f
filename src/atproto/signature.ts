import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto'
import { createRequire } from 'node:module'
import { parseDidKey } from '@atproto/crypto'
import { encode as encodeAtcute } from '@atcute/cbor'

// SPKI DER pieces: id-ecPublicKey and the curve of each atproto key type.
const EC_PUBLIC_KEY = Buffer.from('06072a8648ce3d0201', 'hex')
const P256 = {
  oid: Buffer.from('06082a8648ce3d030107', 'hex'),
  halfOrder: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n >> 1n,
}

const der = (tag: number, body: Buffer): Buffer => {
  if (body.length > 127) throw new Error('key too long')
  return Buffer.concat([Buffer.from([tag, body.length]), body])
}

interface NativeSecp256k1 {
  ecdsaVerify(sig: Uint8Array, msg32: Uint8Array, pubkey: Uint8Array): boolean
}

/**
 * libsecp256k1 through the `secp256k1` package's prebuilt binary (no compiler involved): 50 µs a
 * verification here against 350 µs for OpenSSL's. Its verifier accepts low-S signatures only,
 * which is the atproto rule. `require('secp256k1')` would fall back to pure JS silently; the
 * bindings are loaded directly so that the fallback is OpenSSL and a visible choice.
 */
const native: NativeSecp256k1 | null = (() => {
  try {
    return createRequire(import.meta.url)('secp256k1/bindings') as NativeSecp256k1
  } catch {
    return null
  }
})()

export const nativeSecp256k1 = native !== null

/** A repo signing key, parsed once: verification never goes back to the did:key string. */
export type PublicKey =
  | { alg: 'ES256K'; bytes: Uint8Array; openssl: KeyObject | null }
  | { alg: 'ES256'; bytes: Uint8Array; openssl: KeyObject }

const SECP256K1_OID = Buffer.from('06052b8104000a', 'hex')
const SECP256K1_HALF_ORDER = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n >> 1n

const spki = (oid: Buffer, keyBytes: Uint8Array): KeyObject =>
  createPublicKey({
    key: der(0x30, Buffer.concat([der(0x30, Buffer.concat([EC_PUBLIC_KEY, oid])), der(0x03, Buffer.concat([Buffer.from([0]), Buffer.from(keyBytes)]))])),
    format: 'der',
    type: 'spki',
  })

/** Parses a did:key (compressed secp256k1 or P-256 point); throws on anything else. */
export const parsePublicKey = (didKey: string): PublicKey => {
  const { jwtAlg, keyBytes } = parseDidKey(didKey)
  if (jwtAlg === 'ES256K') return { alg: 'ES256K', bytes: keyBytes, openssl: native ? null : spki(SECP256K1_OID, keyBytes) }
  if (jwtAlg === 'ES256') return { alg: 'ES256', bytes: keyBytes, openssl: spki(P256.oid, keyBytes) }
  throw new Error(`unsupported key type ${jwtAlg}`)
}

const MAX_CACHED = 10_000
const byDidKey = new Map<string, PublicKey>()

/** `parsePublicKey` with a bounded cache, for callers that hold did:key strings. */
const parseCached = (didKey: string): PublicKey => {
  const hit = byDidKey.get(didKey)
  if (hit) return hit
  const parsed = parsePublicKey(didKey)
  if (byDidKey.size >= MAX_CACHED) byDidKey.delete(byDidKey.keys().next().value as string)
  byDidKey.set(didKey, parsed)
  return parsed
}

const isLowS = (sig: Uint8Array, halfOrder: bigint): boolean => {
  const s = BigInt(`0x${Buffer.from(sig.subarray(32)).toString('hex')}`)
  return s !== 0n && s <= halfOrder
}

/**
 * Verifies an atproto signature (compact r||s, low-S, over SHA-256): the same rules as
 * `@atproto/crypto`'s verifier (which rejects DER and high-S signatures), checked against it in
 * tests/signature.test.ts.
 */
export const verifySignature = (key: PublicKey, data: Uint8Array, sig: Uint8Array): boolean => {
  if (sig.length !== 64) return false
  try {
    if (key.alg === 'ES256K' && key.openssl === null && native) {
      return native.ecdsaVerify(sig, createHash('sha256').update(data).digest(), key.bytes)
    }
    if (!isLowS(sig, key.alg === 'ES256K' ? SECP256K1_HALF_ORDER : P256.halfOrder)) return false
    return verify('sha256', data, { key: key.openssl as KeyObject, dsaEncoding: 'ieee-p1363' }, sig)
  } catch {
    return false
  }
}

/** `verifySignature` for a key given as a did:key string. */
export const verifyDidSignature = (didKey: string, data: Uint8Array, sig: Uint8Array): boolean => {
  let key: PublicKey
  try {
    key = parseCached(didKey)
  } catch {
    return false
  }
  return verifySignature(key, data, sig)
}

/**
 * A signed repo commit's signature, the commit decoded by `@atcute/cbor`: re-encoded without
 * `sig` in DAG-CBOR's one canonical form, which is what was signed.
 */
export const verifyAtcuteCommitSignature = (commit: Record<string, unknown>, key: PublicKey): boolean => {
  const { sig, ...unsigned } = commit
  const bytes = sig instanceof Uint8Array ? sig : sig !== null && typeof sig === 'object' && 'buf' in sig ? (sig as { buf: Uint8Array }).buf : null
  if (!bytes) return false
  return verifySignature(key, encodeAtcute(unsigned), bytes)
}
