export { encode } from '@atproto/lex-cbor'
export { cborToLex } from '@atproto/repo'
