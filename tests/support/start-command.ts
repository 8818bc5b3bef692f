import { readFileSync } from 'node:fs'

/** The arguments `npm start` gives Node, so that tests and benchmarks run the service exactly so. */
export const startArgs = (): string[] => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: { start: string } }
  const [node, ...args] = pkg.scripts.start.split(/\s+/)
  if (node !== 'node') throw new Error(`npm start does not run node: ${pkg.scripts.start}`)
  return args
}
