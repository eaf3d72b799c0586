// Time-ordered notification ids: UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits.
import { randomFillSync } from 'node:crypto'

const pool = Buffer.alloc(64 * 1024)
let poolOffset = pool.length

/** Random hex from the same pool (trace ids). */
export function randomHex(bytes: number): string {
  if (poolOffset + bytes > pool.length) {
    randomFillSync(pool)
    poolOffset = 0
  }
  poolOffset += bytes
  return pool.toString('hex', poolOffset - bytes, poolOffset)
}

export function uuidv7(now = Date.now()): string {
  if (poolOffset + 10 > pool.length) {
    randomFillSync(pool)
    poolOffset = 0
  }
  const bytes = Buffer.alloc(16)
  bytes.writeUIntBE(now, 0, 6)
  pool.copy(bytes, 6, poolOffset, poolOffset + 10)
  poolOffset += 10
  bytes[6] = 0x70 | ((bytes[6] ?? 0) & 0x0f) // version 7
  bytes[8] = 0x80 | ((bytes[8] ?? 0) & 0x3f) // variant 10
  const hex = bytes.toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}
