// The offset protocol's Prometheus metrics, the same names in every service that consumes with it
// (distributors, router); each service's registry tells them apart by its default labels.
import { Counter, Gauge, type Registry } from 'prom-client'

export function createOffsetMetrics(registry: Registry) {
  return {
    partitionsHeld: new Gauge({
      name: 'herald_partitions_held',
      help: 'Partitions of the topic this consumer has claimed and consumes.',
      labelNames: ['topic'] as const,
      registers: [registry],
    }),
    fenced: new Counter({
      name: 'herald_partition_fenced_total',
      help: 'Offset advances refused because another consumer holds a newer claim.',
      registers: [registry],
    }),
    stalled: new Gauge({
      name: 'herald_partitions_stalled',
      help: 'Partitions paused by this consumer for a reason other than a claim in progress.',
      registers: [registry],
    }),
    claims: new Counter({
      name: 'herald_partition_claims_total',
      help: 'Partition claims by where the start offset came from (redis, kafka, log_start) or failure.',
      labelNames: ['source'] as const,
      registers: [registry],
    }),
    offsetOutOfRange: new Counter({
      name: 'herald_offset_out_of_range_total',
      help: 'Claimed offsets outside the log: above_end (topic recreated or data lost) or below_start (expired).',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    topicMismatch: new Counter({
      name: 'herald_offset_topic_mismatch_total',
      help: 'Claims that found offsets of an earlier topic of the same name (deleted and recreated): reset to the log start.',
      registers: [registry],
    }),
    expiredRecords: new Counter({
      name: 'herald_records_expired_unfinished_total',
      help: 'Records removed by retention before they were finished (lost: alert on any).',
      registers: [registry],
    }),
    // Set by the group leader's LagExporter (lag.ts), per topic: a router follows several in one process.
    lag: new Gauge({
      name: 'herald_consumer_lag_records',
      help: 'Records not yet finished per partition (log end minus the stored next offset); exported by the group leader only, for every partition of the topic.',
      labelNames: ['topic', 'partition'] as const,
      registers: [registry],
    }),
    oldestUnfinishedAge: new Gauge({
      name: 'herald_oldest_unfinished_age_seconds',
      help: 'Age of the oldest unfinished record of the topic, from its broker timestamp (alert well before topic retention); leader only.',
      labelNames: ['topic'] as const,
      registers: [registry],
    }),
    offsetAdvances: new Counter({
      name: 'herald_offset_advances_total',
      help: 'Offset advances written to Redis by result.',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
  }
}

export type OffsetMetrics = ReturnType<typeof createOffsetMetrics>
