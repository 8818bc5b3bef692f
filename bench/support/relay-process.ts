/**
 * A replay relay in a process of its own, so that the consumer being measured has its core to
 * itself. Reads length-prefixed frames from the file named by argv[2]; prints its URL, then a
 * line as each subscriber connects, and `sent N` as frames go out.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs'
import { serveFrames } from './stream.ts'

/** The file's frames (read in pieces: readFileSync stops at 2 GB). */
const readFrames = (file: string): Uint8Array[] => {
  const fd = openSync(file, 'r')
  const data = Buffer.allocUnsafe(fstatSync(fd).size)
  for (let at = 0; at < data.length; ) {
    const n = readSync(fd, data, at, Math.min(1 << 30, data.length - at), at)
    if (n === 0) throw new Error(`${file} ended early`)
    at += n
  }
  closeSync(fd)
  const frames: Uint8Array[] = []
  for (let at = 0; at < data.length; ) {
    const length = data.readUInt32BE(at)
    frames.push(data.subarray(at + 4, at + 4 + length))
    at += 4 + length
  }
  return frames
}
// The file's buffer is dropped once the messages are framed. Progress (frames written to the
// first subscriber's socket) is printed every 100 ms while it moves.
let sent = 0
let printed = 0
const server = await serveFrames(
  readFrames(process.argv[2] as string),
  () => console.log('connected'),
  (n) => (sent = Math.max(sent, n)),
)
setInterval(() => {
  if (sent !== printed) console.log(`sent ${(printed = sent)}`)
}, 100).unref()
console.log(server.url)
process.on('SIGTERM', () => void server.close().then(() => process.exit(0)))
