import type { Reporter, TestModule, TestRunEndReason } from 'vitest/node'
import type { SerializedError } from 'vitest'

/**
 * Ends the run with one plain "N passed, N failed, N skipped" line that any CI can read. A file
 * that fails outside its tests (in `beforeAll`, or on import) counts as one failure, and so does
 * an error outside any file: the line never says "0 failed" when the run failed.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<SerializedError>, reason: TestRunEndReason): void {
    let passed = 0
    let failed = 0
    let skipped = 0
    for (const mod of testModules) {
      let failedHere = 0
      for (const test of mod.children.allTests()) {
        const state = test.result().state
        if (state === 'passed') passed++
        else if (state === 'failed') failedHere++
        else skipped++
      }
      // Its tests were skipped or never collected, yet the file failed: a hook or its import.
      if (mod.state() === 'failed' && failedHere === 0) failedHere = 1
      failed += failedHere
    }
    failed += unhandledErrors.length
    if (reason === 'failed' && failed === 0) failed = 1
    process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`)
  }
}
