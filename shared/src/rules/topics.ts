// The rules topic: `<KEY_PREFIX>.rules` (`herald.rules`), compacted and keyed by rule name like the other
// configuration topics, but with TOPIC_PARTITIONS partitions: evaluators own rules by partition.
import type { TopicSpec } from '../topics.ts'

const day = 24 * 60 * 60 * 1000

export function rulesTopicName(keyPrefix = 'herald'): string {
  return `${keyPrefix}.rules`
}

export function rulesTopicSpec(topic: string, replication: number): TopicSpec {
  return {
    topic,
    configEntries: [
      { name: 'cleanup.policy', value: 'compact' },
      { name: 'min.compaction.lag.ms', value: String(day) },
      { name: 'delete.retention.ms', value: String(day) },
      { name: 'max.message.bytes', value: String(1024 * 1024) },
      { name: 'min.insync.replicas', value: String(replication >= 3 ? 2 : 1) },
    ],
  }
}
