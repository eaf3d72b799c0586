// The distributor's Prometheus metrics, all defined here. Names: herald_<thing>_<unit>, counters _total.
import { createOffsetMetrics } from '@herald/shared/offsets/metrics'
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'

export function createDistributorMetrics(labels: { channel: string }) {
  const registry = new Registry()
  registry.setDefaultLabels(labels)
  collectDefaultMetrics({ register: registry, prefix: 'herald_distributor_' })
  return {
    registry,
    ...createOffsetMetrics(registry),
    deliveries: new Counter({
      name: 'herald_deliveries_total',
      help: 'Finished notifications by outcome (delivered, dead_lettered, expired).',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    attemptsFailed: new Counter({
      name: 'herald_delivery_attempts_failed_total',
      help: 'Failed delivery attempts by failure class (retryable, permanent, provider).',
      labelNames: ['class'] as const,
      registers: [registry],
    }),
    deliveryLatency: new Histogram({
      name: 'herald_delivery_duration_seconds',
      help: 'Time from the first attempt to the outcome of one notification.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    endToEndLatency: new Histogram({
      name: 'herald_notification_age_at_delivery_seconds',
      help: 'Time from acceptance by the api (createdAt) to delivery.',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600],
      registers: [registry],
    }),
    breakerOpen: new Gauge({
      name: 'herald_breaker_open',
      help: '1 while the channel breaker is open or probing (provider down or credentials rejected).',
      registers: [registry],
    }),
    breakerOpened: new Counter({
      name: 'herald_breaker_opened_total',
      help: 'Times the channel breaker opened.',
      registers: [registry],
    }),
    deferred: new Counter({
      name: 'herald_deliveries_deferred_total',
      help: 'Deliveries handed back to wait outside the handler, by reason (backoff, breaker).',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    skipped: new Counter({
      name: 'herald_deliveries_skipped_total',
      help: 'Records not delivered because their notification had already finished (already_final: a re-read offset or a repeated id).',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    throttled: new Counter({
      name: 'herald_deliveries_throttled_total',
      help: 'Times a record waited because its recipient was over RATE_LIMIT_<CHANNEL> (it waits; nothing is dropped).',
      registers: [registry],
    }),
    recipientsWaiting: new Gauge({
      name: 'herald_recipients_throttled',
      help: 'Recipients whose records wait for their rate limit on the partitions this replica holds.',
      registers: [registry],
    }),
    crashLoops: new Counter({
      name: 'herald_crash_loop_dead_letters_total',
      help: 'Records dead-lettered because their delivery kept crashing the process.',
      registers: [registry],
    }),
    futureVersionWaits: new Counter({
      name: 'herald_future_version_waits_total',
      help: 'Times a partition stopped at a record from a newer Herald version (upgrade the distributor); repeats every minute while it waits.',
      registers: [registry],
    }),
    poison: new Counter({
      name: 'herald_poison_records_total',
      help: 'Records that could not be read (not JSON, failing the schema, too large).',
      registers: [registry],
    }),
  }
}

export type DistributorMetrics = ReturnType<typeof createDistributorMetrics>
