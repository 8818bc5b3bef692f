import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { signature, SIGNATURE_HEADER, IDEMPOTENCY_HEADER } from '../../src/push/webhook.ts'

export interface Delivery {
  key: string
  status: number
  body: string
  signed: boolean
}

/**
 * A webhook receiver that fails its first `failures` requests (500), then accepts; `path` (and
 * query) is where an endpoint's URL may carry a secret of its own.
 */
export const startReceiver = async (secret: string, failures = 0, path = '/hook') => {
  const deliveries: Delivery[] = []
  const server: Server = createServer((req: IncomingMessage, res) => {
    let body = ''
    req.on('data', (d: Buffer) => (body += d.toString()))
    req.on('end', () => {
      const header = String(req.headers[SIGNATURE_HEADER] ?? '')
      const t = Number(/t=(\d+)/.exec(header)?.[1])
      const status = deliveries.length < failures ? 500 : 200
      deliveries.push({ key: String(req.headers[IDEMPOTENCY_HEADER] ?? ''), status, body, signed: header === signature(secret, body, t) })
      res.writeHead(status).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`, deliveries, close: () => new Promise((r) => server.close(r)) }
}
