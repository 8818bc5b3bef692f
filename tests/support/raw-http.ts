import net from 'node:net'

export interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
}

const dechunk = (raw: Buffer): Buffer => {
  const out: Buffer[] = []
  let at = 0
  for (;;) {
    const eol = raw.indexOf('\r\n', at)
    if (eol === -1) break
    const size = Number.parseInt(raw.subarray(at, eol).toString('latin1'), 16)
    if (!Number.isFinite(size) || size === 0) break
    out.push(raw.subarray(eol + 2, eol + 2 + size))
    at = eol + 2 + size + 2
  }
  return Buffer.concat(out)
}

/**
 * Sends bytes as they are over one TCP connection and reads the answer until the server closes
 * it: fetch and node:http refuse to send the malformed requests that a hostile client would.
 * Resolves null when the server closed without answering.
 */
export const rawRequest = (
  base: string,
  request: Buffer | string,
  opts: { localAddress?: string; timeoutMs?: number } = {},
): Promise<RawResponse | null> =>
  new Promise((resolve, reject) => {
    const url = new URL(base)
    const socket = net.connect({ host: url.hostname, port: Number(url.port), localAddress: opts.localAddress })
    const chunks: Buffer[] = []
    socket.setTimeout(opts.timeoutMs ?? 20_000, () => socket.destroy(new Error('no answer in time')))
    // No half-close: Node drops a connection whose client ended it before the answer. The
    // request says `Connection: close`, so the server closes once it has answered.
    socket.on('connect', () => socket.write(request))
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // The server may close as soon as it has answered, while the request is still being sent.
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return
      reject(err)
    })
    socket.on('close', () => {
      const raw = Buffer.concat(chunks)
      const split = raw.indexOf('\r\n\r\n')
      if (raw.length === 0 || split === -1) return resolve(null)
      const [statusLine = '', ...lines] = raw.subarray(0, split).toString('latin1').split('\r\n')
      const headers: Record<string, string> = {}
      for (const line of lines) {
        const colon = line.indexOf(':')
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
      }
      const rest = raw.subarray(split + 4)
      const body = headers['transfer-encoding'] === 'chunked' ? dechunk(rest) : rest
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: body.toString('utf8') })
    })
  })

/** An HTTP/1.1 request, `Connection: close`, with the given extra header lines and body. */
export const buildRequest = (method: string, target: string, headers: [string, string][] = [], body?: Buffer): Buffer => {
  const lines = [`${method} ${target} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close']
  for (const [name, value] of headers) lines.push(`${name}: ${value}`)
  if (body) lines.push(`Content-Length: ${body.length}`)
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'utf8'), body ?? Buffer.alloc(0)])
}
