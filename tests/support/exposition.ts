import { expect } from 'vitest'

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*'
// Values as the text format and OpenMetrics spell them: NaN, +Inf and -Inf exactly. (Go's
// ParseFloat would also take prom-client's "Nan"; strict parsers and OpenMetrics do not.)
const VALUE = '(?:[-+]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][-+]?\\d+)?|[-+]Inf|NaN)'
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`
const SAMPLE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*,?)?\\})? (${VALUE})(?: -?\\d+)?$`)
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])

/**
 * Parses the Prometheus text exposition format (0.0.4) strictly: every line is a HELP, a TYPE
 * or a sample of a declared family, or the test fails.
 */
export const parseExposition = (text: string): { samples: Sample[]; types: Map<string, string> } => {
  const types = new Map<string, string>()
  const samples: Sample[] = []
  expect(text.endsWith('\n')).toBe(true)
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line)
    if (meta) {
      expect(meta[2]).toMatch(new RegExp(`^${NAME}$`))
      if (meta[1] === 'TYPE') {
        expect(TYPES.has(meta[3] as string), line).toBe(true)
        types.set(meta[2] as string, meta[3] as string)
      }
      continue
    }
    const m = SAMPLE.exec(line)
    expect(m, `not a sample line: ${line}`).not.toBeNull()
    const [, name = '', labelText = '', value = ''] = m as RegExpExecArray
    const family = [...types.keys()].find((f) => name === f || /^(_bucket|_sum|_count|_total|_created)$/.test(name.slice(f.length)) && name.startsWith(f))
    expect(family, `sample of an undeclared family: ${line}`).toBeDefined()
    const labels = Object.fromEntries([...labelText.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]))
    samples.push({ name, labels: labels as Record<string, string>, value: value === 'NaN' ? Number.NaN : Number(value.replace(/Inf$/, 'Infinity')) })
  }
  return { samples, types }
}

export const value = (samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value
