/**
 * The baseline consumer in a process of its own (so that it can be pinned with `taskset`, as the
 * service is): @atproto/sync's `Firehose` on the relay, filtered to our two collections,
 * verification on, until it hands over the event of `lastSeq`. Then prints one JSON line (events
 * handed over by type, errors by class, its peak RSS) and exits.
 * Usage: node baseline-runner.ts RELAY_URL PLC_URL LAST_SEQ fair|defaults
 *   fair: `unauthenticatedHandles: true` (no handle lookups: DNS, then HTTPS, for every
 *   #identity, which the indexer never does); defaults: the Firehose's own defaults.
 */
import { Firehose } from '@atproto/sync'
import { IdResolver, MemoryCache } from '@atproto/identity'

const [url, plcUrl, last, mode] = process.argv.slice(2) as [string, string, string, string]
const lastSeq = Number(last)
const events: Record<string, number> = {}
const errors: Record<string, number> = {}
const idResolver = new IdResolver({ plcUrl, didCache: new MemoryCache(), fetch: globalThis.fetch })
const firehose = new Firehose({
  service: url,
  idResolver,
  filterCollections: ['pub.chive.collaboration.invite', 'pub.chive.collaboration.inviteAcceptance'],
  unauthenticatedHandles: mode === 'fair',
  getCursor: async () => 0,
  handleEvent: async (evt) => {
    events[evt.event] = (events[evt.event] ?? 0) + 1
    if ('seq' in evt && evt.seq === lastSeq) {
      console.log(JSON.stringify({ done: true, events, errors, maxRssMb: process.resourceUsage().maxRSS / 1024 }))
      process.exit(0)
    }
  },
  onError: (err) => {
    const name = err.constructor.name
    errors[name] = (errors[name] ?? 0) + 1
  },
})
void firehose.start()
