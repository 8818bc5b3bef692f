import net from 'node:net'
import type { AddressInfo } from 'node:net'

interface Link {
  client: net.Socket
  upstream: net.Socket
  /** The first bytes the client sent: the startup message, with its application_name. */
  startup: string
  silent: boolean
}

export interface PgProxy {
  /** `databaseUrl` with its host and port replaced by the proxy's. */
  url: string
  /**
   * Cuts the connections whose startup message contains `marker` the way a dropped NAT entry
   * does: the server's side is reset (Postgres ends the session), the client's side stays open
   * and hears nothing, ever. Returns how many were cut.
   */
  silence(marker: string): number
  close(): Promise<void>
}

/** A TCP proxy in front of Postgres, for faults of single connections. */
export const startPgProxy = async (databaseUrl: string): Promise<PgProxy> => {
  const target = new URL(databaseUrl)
  const links = new Set<Link>()
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname)
    const link: Link = { client, upstream, startup: '', silent: false }
    links.add(link)
    client.on('data', (d: Buffer) => {
      if (link.startup === '') link.startup = d.toString('latin1')
      if (!link.silent) upstream.write(d)
    })
    upstream.on('data', (d: Buffer) => {
      if (!link.silent) client.write(d)
    })
    const end = () => {
      // A silenced client's socket stays open until close(), which ends it.
      if (link.silent) return
      links.delete(link)
      client.destroy()
      upstream.destroy()
    }
    client.on('close', end)
    upstream.on('close', end)
    client.on('error', () => {})
    upstream.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const url = new URL(databaseUrl)
  url.hostname = '127.0.0.1'
  url.port = String((server.address() as AddressInfo).port)
  return {
    url: url.toString(),
    silence(marker) {
      let n = 0
      for (const link of links) {
        if (!link.startup.includes(marker) || link.silent) continue
        link.silent = true
        link.upstream.resetAndDestroy()
        n++
      }
      return n
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const link of links) {
          link.client.destroy()
          link.upstream.destroy()
        }
        server.close(() => resolve())
      }),
  }
}
