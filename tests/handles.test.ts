import { describe, expect, it } from 'vitest'
import type { IdResolver } from '@atproto/identity'
import { HandleNames } from '../src/api/dashboard/handles.ts'

const doc = (did: string, handle: string) => ({
  id: did,
  alsoKnownAs: [`at://${handle}`],
  verificationMethod: [],
  service: [{ id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint: 'https://pds.example' }],
})

/** A resolver whose answers the test releases when it likes (a slow PLC). */
const heldResolver = () => {
  const asked: string[] = []
  const pending = new Map<string, (d: unknown) => void>()
  const resolver = {
    did: {
      resolve: (did: string) => {
        asked.push(did)
        return new Promise((resolve, reject) => {
          if (did.endsWith('down')) reject(new Error('PLC unreachable'))
          else pending.set(did, resolve)
        })
      },
    },
  } as unknown as Pick<IdResolver, 'did'>
  const answer = (did: string, value: unknown) => pending.get(did)?.(value)
  return { resolver, asked, answer }
}

describe('handles beside DIDs on the dashboard', () => {
  it('never waits on a slow PLC: DIDs alone at first, their handles once the documents came', async () => {
    const { resolver, asked, answer } = heldResolver()
    const names = new HandleNames(resolver, { waitMs: 20 })
    // Nothing has answered: the page is served with DIDs alone.
    expect(await names.of(['did:plc:alice', 'did:plc:bob', 'did:plc:down'])).toEqual(new Map())
    answer('did:plc:alice', doc('did:plc:alice', 'alice.test'))
    answer('did:plc:bob', doc('did:plc:bob', 'not a handle'))
    const later = await names.of(['did:plc:alice', 'did:plc:bob', 'did:plc:down'])
    // A claimed handle that is no handle is not shown; an unreachable document leaves the DID alone.
    expect(later).toEqual(new Map([['did:plc:alice', 'alice.test']]))
    // Documents found (or failing) are kept: a page view asks for each DID once.
    expect(asked.sort()).toEqual(['did:plc:alice', 'did:plc:bob', 'did:plc:down'])
  })

  it('answers at once from what it knows, and asks once for a DID many pages want together', async () => {
    const { resolver, asked, answer } = heldResolver()
    const names = new HandleNames(resolver, { waitMs: 1_000_000 })
    const [a, b] = [names.of(['did:plc:carol']), names.of(['did:plc:carol', 'did:plc:carol'])]
    answer('did:plc:carol', doc('did:plc:carol', 'carol.example.com'))
    expect(await a).toEqual(new Map([['did:plc:carol', 'carol.example.com']]))
    expect(await b).toEqual(new Map([['did:plc:carol', 'carol.example.com']]))
    expect(asked).toEqual(['did:plc:carol'])
    expect(await names.of(['did:plc:carol', 'not a did'])).toEqual(new Map([['did:plc:carol', 'carol.example.com']]))
    expect(asked).toEqual(['did:plc:carol'])
  })
})
