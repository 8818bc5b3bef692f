import type { Pool } from './pool.ts'

/**
 * Synthetic invites for the API benchmark: `invites` verified invites over `invitees` invitees
 * (20% accepted, 5% deleted by their inviter, 5% expired), written straight into the tables.
 */
export const generateInvites = async (pool: Pool, invites: number, invitees: number): Promise<void> => {
  await pool.query(
    `INSERT INTO invite (uri, inviter, cid, rev, subject_uri, subject_cid, subject_collection, invitee, role,
                         created_at, expires_at, sort_at, deleted_at, verification)
     SELECT 'at://did:plc:inviter' || (n % 50000) || '/pub.chive.collaboration.invite/' || n,
            'did:plc:inviter' || (n % 50000), 'bafyinvite' || n, '3k' || lpad(n::text, 11, '0'),
            'at://did:plc:inviter' || (n % 50000) || '/pub.chive.graph.node/' || (n % 100000),
            'bafysubject' || n, 'pub.chive.graph.node', 'did:plc:invitee' || (n % $2), 'collaborator',
            now() - (n || ' seconds')::interval,
            CASE WHEN n % 20 = 1 THEN now() - interval '1 day' END,
            now() - (n || ' seconds')::interval,
            CASE WHEN n % 20 = 2 THEN now() END, 'verified'
     FROM generate_series(1, $1) AS n`,
    [invites, invitees],
  )
  await pool.query(
    `INSERT INTO invite_version (uri, cid) SELECT uri, cid FROM invite WHERE inviter LIKE 'did:plc:inviter%'`,
  )
  await pool.query(
    `INSERT INTO acceptance (uri, author, cid, rev, invite_uri, invite_cid, subject_uri, subject_cid, lenient, created_at)
     SELECT 'at://did:plc:invitee' || (n % $2) || '/pub.chive.collaboration.inviteAcceptance/' || n,
            'did:plc:invitee' || (n % $2), 'bafyacceptance' || n, '3k' || lpad(n::text, 11, '0'),
            'at://did:plc:inviter' || (n % 50000) || '/pub.chive.collaboration.invite/' || n, 'bafyinvite' || n,
            'at://did:plc:inviter' || (n % 50000) || '/pub.chive.graph.node/' || (n % 100000), NULL, false, now()
     FROM generate_series(1, $1) AS n WHERE n % 5 = 0`,
    [invites, invitees],
  )
  await pool.query('ANALYZE invite; ANALYZE acceptance; ANALYZE invite_version')
}

/**
 * Chive's own strategy for `listInvites`, for comparison: the newest `limit` invites of the
 * invitee by self-reported createdAt, the state filter applied afterwards (short or empty pages),
 * and an unfiltered COUNT(*) of the whole table on every call.
 */
export const chiveListInvites = async (pool: Pool, invitee: string, state: string, limit: number) => {
  const rows = await pool.query<{ uri: string; deleted_at: Date | null; expires_at: Date | null; accepted: boolean }>(
    `SELECT i.uri, i.deleted_at, i.expires_at,
            EXISTS (SELECT 1 FROM acceptance a WHERE a.invite_uri = i.uri) AS accepted
     FROM invite i WHERE i.invitee = $1 ORDER BY i.created_at DESC LIMIT $2`,
    [invitee, limit],
  )
  const total = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM invite')
  const now = Date.now()
  const stateOf = (r: (typeof rows.rows)[number]) =>
    r.deleted_at ? 'rejected' : r.expires_at && r.expires_at.getTime() <= now ? 'expired' : r.accepted ? 'accepted' : 'pending'
  return { invites: rows.rows.filter((r) => state === 'all' || stateOf(r) === state), total: total.rows[0]?.n ?? 0 }
}

/**
 * Synthetic proven invites from `inviter` to each of `invitees` (`perInvitee` each), written
 * through the audit trail as ingest writes them (a create, then its proof), so the change feed's
 * trigger makes a `created` change of each: for push tests and benchmarks that need many
 * changes at once. `tag` keeps URIs of different calls apart.
 */
export const generateProvenInvites = async (
  pool: Pool,
  opts: { inviter: string; invitees: string[]; perInvitee: number; message?: string; tag: string },
): Promise<number> => {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    const res = await client.query(
      `WITH rows AS (
         SELECT 'at://' || $1 || '/pub.chive.collaboration.invite/' || $5 || '-' || e.ord || '-' || n AS uri, e.did AS invitee, n
         FROM unnest($2::text[]) WITH ORDINALITY AS e(did, ord), generate_series(1, $3) AS n
       ), ins AS (
         INSERT INTO invite (uri, inviter, cid, rev, subject_uri, subject_cid, subject_collection, invitee, role, message,
                             created_at, sort_at, verification, verified_at)
         SELECT uri, $1, 'bafy' || md5(uri), '3k' || lpad(n::text, 11, '0'), 'at://' || $1 || '/pub.chive.graph.node/' || $5,
                'bafysubject', 'pub.chive.graph.node', invitee, 'collaborator', $4, now(), now(), 'verified', now()
         FROM rows RETURNING uri
       )
       INSERT INTO audit_event (subject, collection, repo, event) SELECT uri, 'pub.chive.collaboration.invite', $1, 'create' FROM ins`,
      [opts.inviter, opts.invitees, opts.perInvitee, opts.message ?? null, opts.tag],
    )
    await client.query(
      `INSERT INTO audit_event (subject, collection, repo, event, reason)
       SELECT subject, collection, repo, 'verification', 'verified' FROM audit_event
       WHERE repo = $1 AND event = 'create' AND subject LIKE 'at://' || $1 || '/pub.chive.collaboration.invite/' || $2 || '-%'
       ORDER BY id`,
      [opts.inviter, opts.tag],
    )
    await client.query('COMMIT')
    return res.rowCount ?? 0
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    client.release()
  }
}
