import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'

/**
 * The README's *Architecture* as a check: data flows one way, so a folder imports only from the
 * folders below it (or itself), no file imports another that imports it back, and no source file
 * grows past the size where one idea per module stops being true.
 */

const SRC = path.resolve(import.meta.dirname, '../src')
/** Lowest first; a file may import its own layer and those before it. */
const LAYERS = [['lib', 'config'], ['db', 'atproto'], ['sources'], ['pipeline'], ['workers'], ['api'], ['push'], ['top']]
const MAX_LINES = 350

const files = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name)
    if (e.isDirectory()) return e.name === 'migrations' ? [] : files(full)
    return /\.(ts|mjs)$/.test(e.name) ? [full] : []
  })

/** `src/pipeline/x.ts` -> `pipeline`; `src/config.ts` and `src/config/*` -> `config`; other top files -> `top`. */
const folderOf = (file: string): string => {
  const rel = path.relative(SRC, file).split(path.sep)
  if (rel[0] === 'config.ts') return 'config'
  return rel.length === 1 ? 'top' : (rel[0] as string)
}
const layerOf = (folder: string): number => LAYERS.findIndex((l) => l.includes(folder))

const importsOf = (file: string): string[] => {
  const text = readFileSync(file, 'utf8')
  const out: string[] = []
  for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)['"](\.{1,2}\/[^'"]+)['"]/g)) {
    out.push(path.resolve(path.dirname(file), m[1] as string))
  }
  return out
}

describe('the layout', () => {
  const all = files(SRC)
  const graph = new Map(all.map((f) => [f, importsOf(f).filter((t) => t.startsWith(SRC))]))

  it('knows every folder of src/', () => {
    for (const f of all) expect(layerOf(folderOf(f)), `${path.relative(SRC, f)} is in no layer`).toBeGreaterThanOrEqual(0)
  })

  it('has no import running up the layers', () => {
    const upward: string[] = []
    for (const [from, targets] of graph) {
      for (const to of targets) {
        if (layerOf(folderOf(to)) > layerOf(folderOf(from))) upward.push(`${path.relative(SRC, from)} -> ${path.relative(SRC, to)}`)
      }
    }
    expect(upward).toEqual([])
  })

  it('has no import cycle', () => {
    const state = new Map<string, 'open' | 'done'>()
    const cycles: string[] = []
    const visit = (f: string, trail: string[]): void => {
      if (state.get(f) === 'done') return
      if (state.get(f) === 'open') {
        cycles.push([...trail.slice(trail.indexOf(f)), f].map((x) => path.relative(SRC, x)).join(' -> '))
        return
      }
      state.set(f, 'open')
      for (const t of graph.get(f) ?? []) visit(t, [...trail, f])
      state.set(f, 'done')
    }
    for (const f of all) visit(f, [])
    expect(cycles).toEqual([])
  })

  it(`keeps every source file at most ${MAX_LINES} lines`, () => {
    const long = all.map((f) => [path.relative(SRC, f), readFileSync(f, 'utf8').split('\n').length - 1] as const).filter(([, n]) => n > MAX_LINES)
    expect(long).toEqual([])
  })
})
