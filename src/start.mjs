// `npm start`'s entry. Plain JavaScript so that it can turn Node's compile cache on before any
// TypeScript loads: with the cache warm, Node neither strips types again nor loads the
// type-stripping WebAssembly (18 MB of resident memory), and starts faster. A cache that cannot
// be written (a read-only file system) only costs that saving.
import module from 'node:module'

module.enableCompileCache?.()
await import('./main.ts')
