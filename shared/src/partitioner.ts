// Herald's key partitioner: the partition Kafka's Java clients (and kafkajs' DefaultPartitioner) choose for a
// key, murmur2 of its UTF-8 bytes modulo the partition count, computed in 32-bit integer arithmetic.
//
// kafkajs' own murmur2 builds 64-bit Long objects for every multiply (about a tenth of the api's kafkajs
// CPU per accepted request in a profile), and its partitioner filters the partition list for every record.
// Both give the same partitions as this one: shared/test/partitioner.test.ts compares them key by key.
import { randomInt } from 'node:crypto'
import type { ICustomPartitioner, PartitionerArgs } from 'kafkajs'

const seed = 0x9747b28c
const m = 0x5bd1e995

/** Kafka's murmur2 of `data`'s first `length` bytes (a signed 32-bit integer, as Java's Utils.murmur2). */
export function murmur2(data: Uint8Array, length = data.length): number {
  let h = seed ^ length
  const whole = length - (length % 4)
  for (let i = 0; i < whole; i += 4) {
    let k = (data[i] as number) | ((data[i + 1] as number) << 8) | ((data[i + 2] as number) << 16)
    k |= (data[i + 3] as number) << 24
    k = Math.imul(k, m)
    k ^= k >>> 24
    k = Math.imul(k, m)
    h = Math.imul(h, m) ^ k
  }
  const tail = length - whole
  if (tail > 0) {
    if (tail === 3) h ^= (data[whole + 2] as number) << 16
    if (tail >= 2) h ^= (data[whole + 1] as number) << 8
    h ^= data[whole] as number
    h = Math.imul(h, m)
  }
  h ^= h >>> 13
  h = Math.imul(h, m)
  h ^= h >>> 15
  return h | 0
}

const utf8 = new TextEncoder()
/** A string key's UTF-8 bytes are written here (grown when a key needs more), not into a new array each. */
let scratch = new Uint8Array(256)

/** The partition of a record key among `count` partitions, as Kafka's default partitioner chooses it. */
export function keyPartition(key: string | Uint8Array, count: number): number {
  if (typeof key !== 'string') return (murmur2(key) & 0x7fffffff) % count
  // At most 3 bytes per UTF-16 unit.
  if (key.length * 3 > scratch.length) scratch = new Uint8Array(key.length * 3)
  return (murmur2(scratch, utf8.encodeInto(key, scratch).written) & 0x7fffffff) % count
}

/**
 * A kafkajs partitioner (producer option `createPartitioner`) with the DefaultPartitioner's rules: a record's
 * own partition if it names one; else the key's partition; a record without a key goes round robin over the
 * partitions that have a leader (over all of them when none has).
 */
export const HeraldPartitioner: ICustomPartitioner = () => {
  const counters = new Map<string, number>()
  const next = (topic: string) => {
    const n = ((counters.get(topic) ?? randomInt(2 ** 31)) + 1) & 0x7fffffff
    counters.set(topic, n)
    return n
  }
  return ({ topic, partitionMetadata, message }: PartitionerArgs): number => {
    if (message.partition !== null && message.partition !== undefined) return message.partition
    if (message.key !== null && message.key !== undefined) {
      return keyPartition(message.key, partitionMetadata.length)
    }
    const led = partitionMetadata.filter((p) => p.leader >= 0)
    if (led.length > 0) return (led[next(topic) % led.length] as (typeof led)[number]).partitionId
    return next(topic) % partitionMetadata.length
  }
}
