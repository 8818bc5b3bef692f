import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const FIXTURE = fileURLToPath(new URL('./fixtures/summary/', import.meta.url))
const VITEST = fileURLToPath(new URL('../node_modules/vitest/vitest.mjs', import.meta.url))

describe('the summary line of a test run', () => {
  it('counts files that fail in beforeAll or on import as failures', () => {
    // A run of its own, without this run's variables (a nested vitest would take them as its own).
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VITEST')))
    const run = spawnSync(process.execPath, [VITEST, 'run', '--config', 'vitest.config.ts'], {
      cwd: FIXTURE,
      env: { ...env, NO_COLOR: '1', FORCE_COLOR: '0' },
      encoding: 'utf8',
      timeout: 60_000,
    })
    const output = `${run.stdout}${run.stderr}`
    expect(run.status, output).toBe(1)
    const last = run.stdout.trimEnd().split('\n').pop()
    // One passing test, one skipped and one never run in the file whose beforeAll throws, and
    // two files that fail outside their tests.
    expect(last, output).toBe('1 passed, 2 failed, 2 skipped')
  })
})
