/**
 * A replay relay in a process of its own, so that the consumer being measured has its core to
 * itself. Reads length-prefixed frames from the file named by argv[2]; prints its URL, then a
 * line as each subscriber connects.
 */
import { readFileSync } from 'node:fs'
import { serveFrames } from './stream.ts'

const data = readFileSync(process.argv[2] as string)
const frames: Uint8Array[] = []
for (let at = 0; at < data.length; ) {
  const length = data.readUInt32BE(at)
  frames.push(data.subarray(at + 4, at + 4 + length))
  at += 4 + length
}
const server = await serveFrames(frames, () => console.log('connected'))
console.log(server.url)
process.on('SIGTERM', () => void server.close().then(() => process.exit(0)))
