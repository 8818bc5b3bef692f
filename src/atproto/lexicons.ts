import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Lexicons, type LexiconDoc } from '@atproto/lexicon'

/** Our own subscription's NSID (served on upgrade by push/subscription.ts). */
export const SUBSCRIBE_INVITES = 'pub.chive.collabIndexer.subscribeInvites'

const LEXICON_DIR = fileURLToPath(new URL('../../lexicons', import.meta.url))

const jsonFiles = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name)
    if (e.isDirectory()) return jsonFiles(full)
    return e.name.endsWith('.json') ? [full] : []
  })

/** Every lexicon in `lexicons/`: the records we index and the queries we serve. */
export const loadLexicons = (): Lexicons =>
  new Lexicons(jsonFiles(LEXICON_DIR).map((f) => JSON.parse(readFileSync(f, 'utf8')) as LexiconDoc))
