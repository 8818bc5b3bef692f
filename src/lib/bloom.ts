/**
 * A fixed-size Bloom filter of strings: "certainly not" or "maybe", in memory that does not grow
 * with what is added. No false negatives.
 */
const fnv1a = (s: string, seed: number): number => {
  let h = seed
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

export class BloomFilter {
  private readonly bits: Uint32Array
  private readonly size: number
  constructor(bytes: number) {
    this.bits = new Uint32Array(Math.max(1, Math.floor(bytes / 4)))
    this.size = this.bits.length * 32
  }
  // Three probes from two hashes (Kirsch-Mitzenmacher).
  private probes(key: string): [number, number, number] {
    const a = fnv1a(key, 0x811c9dc5)
    // Both unsigned: `| 1` alone would turn half of them negative, and a negative probe misses.
    const b = (fnv1a(key, 0x01000193) | 1) >>> 0
    return [a % this.size, (a + b) % this.size, (a + 2 * b) % this.size]
  }
  add(key: string): void {
    for (const p of this.probes(key)) (this.bits as Uint32Array)[p >>> 5] = ((this.bits[p >>> 5] as number) | (1 << (p & 31))) >>> 0
  }
  has(key: string): boolean {
    for (const p of this.probes(key)) if ((((this.bits[p >>> 5] as number) >>> (p & 31)) & 1) === 0) return false
    return true
  }
}
