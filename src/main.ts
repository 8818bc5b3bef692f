import { loadConfig } from './config.ts'
import { createLogger } from './lib/log.ts'
import { startService } from './service.ts'

const main = async (): Promise<void> => {
  const config = loadConfig()
  const log = createLogger(config.logLevel)
  const service = await startService(config, log)
  let stopping = false
  const shutdown = (signal: string) => {
    if (stopping) return
    stopping = true
    log.info({ signal }, 'shutting down')
    // A hung dependency must not keep an orchestrator waiting forever.
    setTimeout(() => {
      log.error('shutdown timed out')
      process.exit(1)
    }, 15_000).unref()
    service.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', () => shutdown('SIGTERM'))
  process.on('SIGINT', () => shutdown('SIGINT'))
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
