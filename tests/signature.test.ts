import { describe, expect, it } from 'vitest'
import { P256Keypair, Secp256k1Keypair, verifySignature } from '@atproto/crypto'
import { nativeSecp256k1, parsePublicKey, verifyDidSignature, verifySignature as verifyParsed } from '../src/atproto/signature.ts'

const ORDERS = {
  ES256K: 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n,
  ES256: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
}

/** The same signature with s replaced by n - s: valid ECDSA, but malleable and refused by atproto. */
const highS = (sig: Uint8Array, n: bigint): Uint8Array => {
  const s = BigInt(`0x${Buffer.from(sig.subarray(32)).toString('hex')}`)
  const flipped = Buffer.from((n - s).toString(16).padStart(64, '0'), 'hex')
  return new Uint8Array(Buffer.concat([Buffer.from(sig.subarray(0, 32)), flipped]))
}

describe('signature verification (libsecp256k1 for ES256K, OpenSSL for ES256)', () => {
  it('uses the native libsecp256k1 binary that the secp256k1 package ships, not a JS fallback', () => {
    expect(nativeSecp256k1).toBe(true)
    expect(parsePublicKey('did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme').openssl).toBeNull()
  })

  for (const [alg, make] of [
    ['ES256K', () => Secp256k1Keypair.create()],
    ['ES256', () => P256Keypair.create()],
  ] as const) {
    it(`agrees with @atproto/crypto on ${alg}: valid, tampered, malleable, wrong key, malformed`, async () => {
      const other = await make()
      for (let i = 0; i < 60; i++) {
        const key = await make()
        const data = new TextEncoder().encode(`message ${i} ${Math.random()}`)
        const sig = await key.sign(data)
        const did = key.did()
        expect(verifyDidSignature(did, data, sig)).toBe(true)
        expect(await verifySignature(did, data, sig)).toBe(true)
        const parsed = parsePublicKey(did)
        expect(verifyParsed(parsed, data, sig)).toBe(true)

        const tampered = new Uint8Array(data)
        tampered[0] = (tampered[0] as number) ^ 1
        expect(verifyDidSignature(did, tampered, sig)).toBe(false)
        expect(await verifySignature(did, tampered, sig)).toBe(false)

        const malleable = highS(sig, ORDERS[alg])
        expect(verifyDidSignature(did, data, malleable)).toBe(false)
        expect(verifyParsed(parsed, data, malleable)).toBe(false)
        expect(verifyParsed(parsed, tampered, sig)).toBe(false)
        expect(await verifySignature(did, data, malleable)).toBe(false)

        expect(verifyDidSignature(other.did(), data, sig)).toBe(false)
        expect(verifyDidSignature(did, data, sig.subarray(0, 63))).toBe(false)
        expect(verifyDidSignature('did:key:zNotAKey', data, sig)).toBe(false)
      }
    })
  }
})
