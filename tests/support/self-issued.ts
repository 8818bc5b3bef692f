import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Secp256k1Keypair } from '@atproto/crypto'
import { createServiceJwt } from '@atproto/xrpc-server'

/**
 * A DID of the test's own (a did:web served on loopback) whose service-auth tokens it signs
 * itself, with whatever `exp` it likes: what anyone can do without asking a PDS.
 */
export const selfIssuer = async () => {
  const keypair = await Secp256k1Keypair.create()
  let did = ''
  const server = createServer((req, res) => {
    if (req.url !== '/.well-known/did.json') return void res.writeHead(404).end()
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        '@context': ['https://www.w3.org/ns/did/v1', 'https://w3id.org/security/multikey/v1'],
        id: did,
        verificationMethod: [{ id: `${did}#atproto`, type: 'Multikey', controller: did, publicKeyMultibase: keypair.did().slice('did:key:'.length) }],
      }),
    )
  })
  await new Promise<void>((resolve) => server.listen(0, resolve))
  did = `did:web:localhost%3A${(server.address() as AddressInfo).port}`
  return {
    did,
    /** A token for `lxm` at `aud` that expires `seconds` from now. */
    token: (aud: string, lxm: string, seconds: number): Promise<string> =>
      createServiceJwt({ iss: did, aud, lxm, exp: Math.floor(Date.now() / 1000) + seconds, keypair }),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
