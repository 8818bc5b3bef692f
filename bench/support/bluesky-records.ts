/**
 * Bluesky-like records for the benchmark streams (likes dominate, as on the network). Shared by
 * `corpus.ts` (written through a PDS) and `tracked-corpus.ts` (repos built in memory).
 */
export const rnd = (n: number) => Math.floor(Math.random() * n)
const words = 'the of and to in a is that for it as was with be by on not he this are or his from at which but have an they you were her she there one all we can their has been if more when will would who so no'.split(' ')
export const sentence = (min: number, max: number) => {
  const target = min + rnd(max - min)
  let s = ''
  while (s.length < target) s += `${words[rnd(words.length)]} `
  return s.trim()
}
export const now = () => new Date().toISOString()

const B32 = 'abcdefghijklmnopqrstuvwxyz234567'
/** Random base32 characters (Math.random: cheap, and these need not be unpredictable). */
const chars = (n: number) => {
  let s = ''
  for (let i = 0; i < n; i++) s += B32[rnd(32)]
  return s
}

/** A strongRef to some other post (the PDS folds repeated likes or reposts of one post into one). */
const otherPost = () => ({
  uri: `at://did:plc:${chars(24)}/app.bsky.feed.post/3${chars(12)}`,
  cid: 'bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a',
})

/** A Bluesky-like record of a weighted random collection (likes dominate, as on the network). */
export const blueskyRecord = (posts: readonly { uri: string; cid: string }[]): { collection: string; value: Record<string, unknown> } => {
  const roll = Math.random()
  const ref = posts[rnd(posts.length)]
  if (roll < 0.5) return { collection: 'app.bsky.feed.like', value: { subject: otherPost(), createdAt: now() } }
  if (roll < 0.62) return { collection: 'app.bsky.feed.repost', value: { subject: otherPost(), createdAt: now() } }
  // Follows of distinct accounts (the PDS folds repeated follows of one account into one).
  if (roll < 0.72) return { collection: 'app.bsky.graph.follow', value: { subject: `did:plc:${chars(24)}`, createdAt: now() } }
  const text = sentence(20, 290)
  const post: Record<string, unknown> = { text, langs: ['en'], createdAt: now() }
  if (ref && Math.random() < 0.3) post.reply = { root: ref, parent: ref }
  if (Math.random() < 0.2) {
    post.embed = {
      $type: 'app.bsky.embed.external',
      external: { uri: `https://example.com/${rnd(1e9)}`, title: sentence(20, 80), description: sentence(40, 200) },
    }
  }
  if (Math.random() < 0.2) {
    const start = text.indexOf(' ') + 1
    post.facets = [
      { index: { byteStart: start, byteEnd: start + 3 }, features: [{ $type: 'app.bsky.richtext.facet#tag', tag: sentence(3, 12).replace(/ /g, '') }] },
    ]
  }
  return { collection: 'app.bsky.feed.post', value: post }
}
