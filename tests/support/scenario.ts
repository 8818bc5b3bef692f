import { expect } from 'vitest'
import { ACCEPTANCE, INVITE, LIST_COLLABORATORS, LIST_INVITES, NODE, createUser, type Ref, type User } from './harness.ts'

/** A small seeded PRNG (mulberry32): a failing run can be replayed from its seed. */
export const prng = (seed: number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface InviteModel {
  ref: Ref
  inviter: User
  invitee: User
  subject: Ref
  role: string
  deleted: boolean
  acceptances: Ref[]
}

/** What a correct indexer must serve after the scenario: states per invite, collaborators per subject. */
export interface Oracle {
  users: User[]
  states: Map<string, string>
  collaborators: Map<string, string[]>
}

/**
 * Writes a random but reproducible history through the real PDS: subjects, invites, updates,
 * deletes, acceptances and their withdrawals, rejected invites, and unrelated noise commits. Repos
 * are written concurrently, each in order. Returns what a correct index holds afterwards.
 */
export const writeScenario = async (seed: number, opts: { users?: number; steps?: number; noise?: number } = {}): Promise<Oracle> => {
  const rand = prng(seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T
  const users = await Promise.all(Array.from({ length: opts.users ?? 5 }, (_, i) => createUser(`sc${i}`)))
  const invites: InviteModel[] = []
  const subjects = new Map<string, Ref[]>()
  for (const u of users) subjects.set(u.did, [await u.node(), await u.node()])
  // Each user's writes go in order; different users write concurrently.
  const lanes = new Map<string, Promise<unknown>>()
  const inLane = <T>(u: User, fn: () => Promise<T>): Promise<T> => {
    const next = (lanes.get(u.did) ?? Promise.resolve()).then(fn)
    lanes.set(u.did, next.catch(() => {}))
    return next
  }
  const steps = opts.steps ?? 150
  const pendingWrites: Promise<unknown>[] = []
  for (let i = 0; i < steps; i++) {
    const roll = rand()
    const live = invites.filter((m) => !m.deleted)
    if (roll < 0.4 || live.length === 0) {
      const inviter = pick(users)
      const invitee = pick(users.filter((u) => u !== inviter))
      const subject = pick(subjects.get(inviter.did) as Ref[])
      const model: InviteModel = { ref: { uri: '', cid: '' }, inviter, invitee, subject, role: 'collaborator', deleted: false, acceptances: [] }
      invites.push(model)
      pendingWrites.push(inLane(inviter, async () => (model.ref = await inviter.invite(subject, invitee))))
    } else if (roll < 0.55) {
      const m = pick(live)
      m.role = pick(['editor', 'viewer', 'reviewer'])
      const role = m.role
      pendingWrites.push(
        inLane(m.inviter, async () => {
          m.ref = await m.inviter.put(m.ref.uri, { subject: m.subject, invitee: m.invitee.did, role, createdAt: new Date().toISOString() })
        }),
      )
    } else if (roll < 0.65) {
      const m = pick(live)
      m.deleted = true
      pendingWrites.push(inLane(m.inviter, () => m.inviter.delete(m.ref.uri)))
    } else if (roll < 0.85) {
      const m = pick(live)
      const lenient = rand() < 0.5
      pendingWrites.push(
        (async () => {
          await lanes.get(m.inviter.did)
          const invite = lenient ? { uri: m.ref.uri, cid: '' } : m.ref
          const subject = lenient ? { uri: m.subject.uri, cid: '' } : m.subject
          const acc = await inLane(m.invitee, () => m.invitee.accept(invite, subject))
          m.acceptances.push(acc)
        })(),
      )
    } else if (roll < 0.93) {
      const m = pick(live)
      pendingWrites.push(
        (async () => {
          await lanes.get(m.invitee.did)
          const acc = m.acceptances.pop()
          if (acc) await inLane(m.invitee, () => m.invitee.delete(acc.uri))
        })(),
      )
    } else {
      // Never served: an invite to oneself.
      const u = pick(users)
      pendingWrites.push(inLane(u, () => u.invite(pick(subjects.get(u.did) as Ref[]), u)))
    }
  }
  await Promise.all(pendingWrites)
  await Promise.all([...lanes.values()])
  const noise = opts.noise ?? 0
  await Promise.all(
    users.map(async (u, k) => {
      for (let i = 0; i < Math.ceil(noise / users.length); i++) {
        await u.create('com.example.noise', { n: i, k, createdAt: new Date().toISOString() })
      }
    }),
  )
  const states = new Map<string, string>()
  const collaborators = new Map<string, string[]>()
  for (const m of invites) {
    const accepted = !m.deleted && m.acceptances.length > 0
    states.set(m.ref.uri, m.deleted ? 'rejected' : accepted ? 'accepted' : 'pending')
    if (accepted) {
      const list = collaborators.get(m.subject.uri) ?? []
      if (!list.includes(m.invitee.did)) list.push(m.invitee.did)
      collaborators.set(m.subject.uri, list)
    }
  }
  for (const list of subjects.values()) for (const s of list) if (!collaborators.has(s.uri)) collaborators.set(s.uri, [])
  return { users, states, collaborators }
}

type Get = (nsid: string, params: Record<string, string | number>, token?: string) => Promise<{ status: number; body: unknown }>

/** Everything the API serves for the scenario's users, in the oracle's shape. */
export const observe = async (get: Get, oracle: Oracle) => {
  const states = new Map<string, string>()
  for (const u of oracle.users) {
    const token = await u.token(LIST_INVITES)
    let cursor: string | undefined
    do {
      const res = await get(LIST_INVITES, { invitee: u.did, limit: 100, ...(cursor ? { cursor } : {}) }, token)
      expect(res.status).toBe(200)
      const body = res.body as { invites: { uri: string; state: string }[]; cursor?: string }
      for (const i of body.invites) {
        expect(states.has(i.uri), `${i.uri} listed twice`).toBe(false)
        states.set(i.uri, i.state)
      }
      cursor = body.cursor
    } while (cursor)
  }
  const collaborators = new Map<string, string[]>()
  for (const subject of oracle.collaborators.keys()) {
    const res = await get(LIST_COLLABORATORS, { subjectUri: subject })
    expect(res.status).toBe(200)
    const body = res.body as { collaborators: { did: string }[] }
    collaborators.set(subject, body.collaborators.map((c) => c.did))
  }
  return { states, collaborators }
}

/** Asserts that what the API serves is exactly the oracle. */
export const expectOracle = async (get: Get, oracle: Oracle) => {
  const seen = await observe(get, oracle)
  expect(Object.fromEntries([...seen.states].sort())).toEqual(Object.fromEntries([...oracle.states].sort()))
  const sort = (m: Map<string, string[]>) => Object.fromEntries([...m].map(([k, v]) => [k, [...v].sort()]).sort())
  expect(sort(seen.collaborators)).toEqual(sort(oracle.collaborators))
}

export { ACCEPTANCE, INVITE, NODE }
