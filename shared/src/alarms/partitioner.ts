// Every record about an alarm goes to the partition of its name, whatever its key: overrides are keyed
// `<name>/<kind>`, and the key's own hash would send them elsewhere. The partition is the one Kafka's default
// partitioner (murmur2, as kafkajs' DefaultPartitioner) gives the bare name, so the registration, activation,
// overrides and effective state of one alarm share a partition number on every alarm topic.
import { Partitioners } from 'kafkajs'

const byKey = Partitioners.DefaultPartitioner()

/** The alarm a record key is about: the key up to the first `/` (`disk-full/shelved` → `disk-full`). */
export function alarmOfKey(key: string): string {
  const slash = key.indexOf('/')
  return slash < 0 ? key : key.slice(0, slash)
}

/** The partition of `name` among `count` partitions. */
export function alarmPartition(name: string, count: number): number {
  return byKey({
    topic: '',
    partitionMetadata: Array.from({ length: count }, (_, partitionId) => ({
      partitionId,
      leader: 0,
      partitionErrorCode: 0,
      replicas: [0],
      isr: [0],
    })),
    message: { key: name, value: null },
  })
}

/** A kafkajs partitioner for the alarm topics (producer option `createPartitioner`). */
export const AlarmPartitioner = () => {
  return ({ partitionMetadata, message }: Parameters<typeof byKey>[0]): number => {
    const key = message.key === null || message.key === undefined ? '' : message.key.toString()
    return alarmPartition(alarmOfKey(key), partitionMetadata.length)
  }
}
