// Every record about an alarm goes to the partition of its name, whatever its key: overrides are keyed
// `<name>/<kind>`, and the key's own hash would send them elsewhere. The partition is the one Kafka's default
// partitioner (murmur2, see ../partitioner.ts) gives the bare name, so the registration, activation,
// overrides and effective state of one alarm share a partition number on every alarm topic.
import type { PartitionerArgs } from 'kafkajs'
import { keyPartition } from '../partitioner.ts'

/** The alarm a record key is about: the key up to the first `/` (`disk-full/shelved` → `disk-full`). */
export function alarmOfKey(key: string): string {
  const slash = key.indexOf('/')
  return slash < 0 ? key : key.slice(0, slash)
}

/** The partition of `name` among `count` partitions. */
export function alarmPartition(name: string, count: number): number {
  return keyPartition(name, count)
}

/** A kafkajs partitioner for the alarm topics (producer option `createPartitioner`). */
export const AlarmPartitioner = () => {
  return ({ partitionMetadata, message }: PartitionerArgs): number => {
    const key = message.key === null || message.key === undefined ? '' : message.key.toString()
    return alarmPartition(alarmOfKey(key), partitionMetadata.length)
  }
}
