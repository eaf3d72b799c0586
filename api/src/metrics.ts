// The api's Prometheus metrics, all defined here. Names: herald_<thing>_<unit>, counters _total.
import { channels } from '@herald/shared/config'
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'

export function createApiMetrics() {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'herald_api_' })
  const metrics = {
    registry,
    requests: new Counter({
      name: 'herald_http_requests_total',
      help: 'HTTP requests by route, method and status.',
      labelNames: ['route', 'method', 'status'] as const,
      registers: [registry],
    }),
    requestsInFlight: new Gauge({
      name: 'herald_http_requests_in_flight',
      help: 'HTTP requests received and not answered yet, by route (a shutdown waits for them).',
      labelNames: ['route'] as const,
      registers: [registry],
    }),
    requestDuration: new Histogram({
      name: 'herald_http_request_duration_seconds',
      help: 'HTTP request latency by route.',
      labelNames: ['route'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    produceDuration: new Histogram({
      name: 'herald_produce_duration_seconds',
      help: 'Time from sending a produce request to Kafka to its acknowledgement (acks=all).',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    produceBatchSize: new Histogram({
      name: 'herald_produce_batch_records',
      help: 'Records per produce request (requests coalesced into one write).',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
      registers: [registry],
    }),
    accepted: new Counter({
      name: 'herald_notifications_accepted_total',
      help: 'Notifications acknowledged by Kafka and answered 202, by channel.',
      labelNames: ['channel'] as const,
      registers: [registry],
    }),
    alarmEventsAccepted: new Counter({
      name: 'herald_alarm_events_accepted_total',
      help: 'Alarm events acknowledged by Kafka and answered 202.',
      registers: [registry],
    }),
    produceFailures: new Counter({
      name: 'herald_produce_failures_total',
      help: 'Writes answered 503 by reason (timeout, kafka_error, batch).',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    idempotency: new Counter({
      name: 'herald_idempotency_total',
      help: 'Requests with an Idempotency-Key by result (new, replayed, conflict, mismatch, out_of_time).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    statusWriteFailures: new Counter({
      name: 'herald_status_write_failures_total',
      help: 'Accepted notifications whose queued status could not be written to Redis (still delivered).',
      registers: [registry],
    }),
  }
  // Series that alerts watch exist from the start at 0 (a rate over a missing series is no alert).
  for (const channel of channels) metrics.accepted.inc({ channel }, 0)
  for (const reason of ['timeout', 'kafka_error', 'batch']) metrics.produceFailures.inc({ reason }, 0)
  return metrics
}

export type ApiMetrics = ReturnType<typeof createApiMetrics>
