/** A TID (rev, rkey) for a moment `ms` from now. */
export const revAt = (ms: number): string => {
  const chars = '234567abcdefghijklmnopqrstuvwxyz'
  let v = (BigInt(Date.now() + ms) * 1000n) << 10n
  let out = ''
  for (let i = 0; i < 13; i++) {
    out = chars[Number(v & 31n)] + out
    v >>= 5n
  }
  return out
}
