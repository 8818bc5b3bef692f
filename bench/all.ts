/**
 * `npm run bench`: the ingest, freshness and API benchmarks one after another (each in a process
 * of its own, printing its own tables), then one table of the figures against the goals.
 * Arguments are passed to none of them: each runs at its default size.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'

interface Span {
  p50: number
  p99: number
}
interface Load {
  rps: number
  p50: number
  p99: number
  failed: number
}
interface IngestProfile {
  frames: number
  avgBytes: number
  chiveShare: number
  trackedShare: number | null
  wsOnly: number
  service: number
  serviceRssMb: number
  baselineFair: number
  baselineDefault: number
  ratioFair: number
  ratioDefault: number
  verifyMs: number
}
interface Figures {
  ingest: { profiles: Partial<Record<'bluesky' | 'tracked', IngestProfile>> }
  freshness: Record<'stream' | 'proof', Record<'total' | 'write' | 'toFirehose' | 'fromFirehose', Span>>
  api: Record<'inbox' | 'collaborators' | 'chive', Load>
  connections: number
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-'))
const run = (script: string): Promise<Record<string, unknown>> =>
  new Promise((resolve, reject) => {
    const out = path.join(dir, `${path.basename(script, '.ts')}.json`)
    console.log(`\n== ${script}`)
    const child = spawn(process.execPath, [script], { stdio: 'inherit', env: { ...process.env, BENCH_JSON: out } })
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`${script} exited ${code}`))
      resolve(JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>)
    })
  })

const figures = { ...(await run('bench/ingest.ts')), ...(await run('bench/freshness.ts')), ...(await run('bench/api.ts')) } as unknown as Figures
rmSync(dir, { recursive: true, force: true })

// Figures not measured come back from JSON as null.
const n = (x: number | null) => (x === null || !Number.isFinite(x) ? '-' : Math.round(x).toLocaleString('en-US'))
const times = (x: number | null) => (x === null || !Number.isFinite(x) ? '-' : `${x.toFixed(1)}x`)
const ms = (x: number) => x.toFixed(1)
const mark = (ok: boolean) => (ok ? 'met' : 'not met')
const { ingest, freshness, api } = figures
const verifyMs = Math.max(...Object.values(ingest.profiles).map((p) => p.verifyMs))
const profiles = Object.entries(ingest.profiles) as ['bluesky' | 'tracked', IngestProfile][]
const rows: [string, string, string, string][] = [
  ...profiles.flatMap(([name, p]): [string, string, string, string][] => [
    [`ingest (${name}), the service pinned to one core, frames/s`, '≥ 50,000', n(p.service), mark(p.service >= 50_000)],
    [`ingest (${name}), ratio to @atproto/sync with unauthenticatedHandles`, '≥ 3x', times(p.ratioFair), mark(p.ratioFair >= 3)],
    [`ingest (${name}), ratio to @atproto/sync with its defaults`, '', times(p.ratioDefault), ''],
    [`ingest (${name}), service RSS at full speed, MB`, '≤ 200', n(p.serviceRssMb), mark(p.serviceRssMb <= 200)],
    [`ingest (${name}), a \`ws\` client that only counts frames, frames/s`, '', n(p.wsOnly), ''],
  ]),
  ['relevant-commit verification, ms', '≤ 1.5', verifyMs.toFixed(2), mark(verifyMs <= 1.5)],
  ['freshness, written -> listed, p50 ms', '≤ 30', ms(freshness.stream.total.p50), mark(freshness.stream.total.p50 <= 30)],
  ['freshness, written -> listed, p99 ms', '≤ 100', ms(freshness.stream.total.p99), mark(freshness.stream.total.p99 <= 100)],
  ['freshness, of which on the firehose -> listed, p50 / p99 ms', '', `${ms(freshness.stream.fromFirehose.p50)} / ${ms(freshness.stream.fromFirehose.p99)}`, ''],
  ['freshness, subject proven by getRecord, p50 / p99 ms', '', `${ms(freshness.proof.total.p50)} / ${ms(freshness.proof.total.p99)}`, ''],
  ['API inbox (listInvites, pending, auth), req/s', '≥ 3,000', n(api.inbox.rps), mark(api.inbox.rps >= 3000 && api.inbox.failed === 0)],
  ['API inbox, p99 ms', '≤ 10', String(api.inbox.p99), mark(api.inbox.p99 <= 10 && api.inbox.failed === 0)],
  ['API listCollaborators, req/s', '≥ 3,000', n(api.collaborators.rps), mark(api.collaborators.rps >= 3000 && api.collaborators.failed === 0)],
  ['API listCollaborators, p99 ms', '≤ 10', String(api.collaborators.p99), mark(api.collaborators.p99 <= 10 && api.collaborators.failed === 0)],
  ["Chive's own inbox strategy on the same data, req/s / p99 ms", '', `${n(api.chive.rps)} / ${api.chive.p99}`, ''],
]
console.log(`\n== summary (${os.cpus().length} cores, ${os.cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version})`)
for (const [name, p] of profiles) {
  const tracked = p.trackedShare === null ? '' : `, ${(p.trackedShare * 100).toFixed(1)}% from tracked repos`
  console.log(`${name} stream: ${n(p.frames)} frames, avg ${n(p.avgBytes)} B, ${(p.chiveShare * 100).toFixed(2)}% Chive commits${tracked}`)
}
console.log(`API: 1,000,000 invites, ${figures.connections} connections`)
console.log('| measure | goal | measured | |')
console.log('|---|---|---|---|')
for (const r of rows) console.log(`| ${r.join(' | ')} |`)
