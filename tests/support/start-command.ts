import { readFileSync } from 'node:fs'

/** The arguments `npm start` gives Node, so that tests and benchmarks run the service exactly so. */
export const startArgs = (): string[] => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: { start: string } }
  // `exec`: the shell npm runs the script with becomes node, so signals sent to npm reach it.
  const [node, ...args] = pkg.scripts.start.replace(/^exec\s+/, '').split(/\s+/)
  if (node !== 'node') throw new Error(`npm start does not run node: ${pkg.scripts.start}`)
  return args
}
