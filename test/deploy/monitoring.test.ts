// The PromQL in deploy/ (alerts, Prometheus adapter rules, KEDA triggers, the Grafana dashboard): it parses,
// it names only metrics the services register (here against registries built in-process;
// metrics.int.test.ts checks the same against the /metrics of a running api and distributor), the
// retention alert keeps its documented fraction of the topics' retention, and the dashboard shows what
// an operator needs.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { channels } from '@herald/shared/config'
import { topicNames, topicSpecs } from '@herald/shared/topics'
import { createApiMetrics } from '../../api/src/metrics.ts'
import { createDistributorMetrics } from '../../distributor/src/metrics.ts'
import {
  adapterRules,
  adapterSeries,
  alertRules,
  grafanaDashboard,
  kedaTriggers,
  metricFamilies,
  parsePromQL,
  promqlExpressions,
  unknownMetricReferences,
} from '../support/deploy-files.ts'

const expressions = promqlExpressions()

test('every PromQL expression in deploy/ parses', () => {
  assert.ok(expressions.length > 40, `found ${expressions.length}`)
  const broken = expressions
    .map(({ where, expr }) => ({ where, expr, errorAt: parsePromQL(expr).errorAt }))
    .filter((e) => e.errorAt !== undefined)
    .map((e) => `${e.where}: syntax error at ${e.errorAt} in ${e.expr}`)
  assert.deepEqual(broken, [])
})

test('every metric named in deploy/ is registered by the api or the distributor', async () => {
  const text = [
    await createApiMetrics().registry.metrics(),
    await createDistributorMetrics({ channel: 'email' }).registry.metrics(),
  ].join('\n')
  assert.deepEqual(unknownMetricReferences(expressions, metricFamilies(text)), [])
})

test('the retention alert fires at its documented fraction of the main topics retention', () => {
  const rule = alertRules().find((r) => r.alert === 'HeraldBacklogNearRetention')
  assert.ok(rule, 'HeraldBacklogNearRetention')
  assert.match(rule.expr, /^max by \(namespace, channel\) \(herald_oldest_unfinished_age_seconds\) > \d+$/)
  const threshold = Number(/> (\d+)$/.exec(rule.expr)?.[1])
  const fraction = Number(rule.annotations?.retention_fraction)
  assert.ok(fraction > 0 && fraction <= 0.5, 'well before retention: at most half of it')
  const [main] = topicSpecs(topicNames(), ['email'], 3)
  const retentionMs = Number(main?.configEntries.find((e) => e.name === 'retention.ms')?.value)
  assert.equal(threshold, (fraction * retentionMs) / 1000, `threshold = ${fraction} × ${retentionMs} ms`)
  // The description states the retention in days.
  assert.match(rule.annotations?.description ?? '', new RegExp(`${retentionMs / 86_400_000}-day retention`))
})

test('alerts: unique names, a severity and a summary each, and every issue area covered', () => {
  const rules = alertRules()
  assert.equal(new Set(rules.map((r) => r.alert)).size, rules.length)
  for (const r of rules) {
    assert.match(r.labels?.severity ?? '', /^(warning|critical)$/, r.alert)
    assert.ok(r.annotations?.summary, `${r.alert}: summary`)
  }
  const watched = new Set(rules.flatMap((r) => parsePromQL(r.expr).metrics))
  for (const metric of [
    'herald_oldest_unfinished_age_seconds',
    'herald_consumer_lag_records',
    'herald_deliveries_total',
    'herald_breaker_open',
    'herald_partition_fenced_total',
    'herald_partitions_stalled',
    'herald_produce_failures_total',
    'herald_http_requests_total',
    'herald_records_expired_unfinished_total',
  ])
    assert.ok(watched.has(metric), `no alert watches ${metric}`)
})

test('the adapter rules turn the leader-only lag and age series into per-channel external metrics', () => {
  const rules = adapterRules()
  const bySeries = new Map(rules.map((r) => [adapterSeries(r), r]))
  for (const series of ['herald_consumer_lag_records', 'herald_oldest_unfinished_age_seconds']) {
    const rule = bySeries.get(series)
    assert.ok(rule, `a rule for ${series}`)
    assert.match(rule.seriesQuery, /namespace!=""/, 'namespaced: the adapter scopes queries to the HPA')
    assert.match(rule.metricsQuery, /<<\.Series>>\{<<\.LabelMatchers>>\}/)
    assert.match(rule.metricsQuery, /by \(channel\)/)
    assert.match(rule.metricsQuery, /unless on \(channel\)/, 'nothing while the breaker is open')
  }
  const lag = bySeries.get('herald_consumer_lag_records')
  assert.match(lag?.metricsQuery ?? '', /^sum by \(channel\) \(max by \(namespace, channel, partition\)/)
})

test('the KEDA prometheus triggers query the lag of their own channel', () => {
  const triggers = kedaTriggers().filter((t) => t.type === 'prometheus')
  assert.equal(triggers.length, channels.length)
  for (const t of triggers) {
    const channel = t.scaledObject.replace('herald-distributor-', '')
    assert.ok(parsePromQL(t.metadata.query ?? '').metrics.includes('herald_consumer_lag_records'))
    assert.match(
      t.metadata.query ?? '',
      new RegExp(`herald_consumer_lag_records\\{[^}]*channel="${channel}"`),
    )
    assert.equal(t.metadata.ignoreNullValues, 'false', 'an empty answer holds the count, not scales to min')
  }
})

test('the dashboard shows ingest, produce latency, deliveries, durations, lag, age, breakers, dead letters, partitions', () => {
  const dashboard = grafanaDashboard()
  const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr))
  const shown = new Set(queries.flatMap((q) => parsePromQL(q.replace(/\$__rate_interval/g, '5m')).metrics))
  for (const metric of [
    'herald_notifications_accepted_total',
    'herald_produce_duration_seconds_bucket',
    'herald_produce_failures_total',
    'herald_http_requests_total',
    'herald_deliveries_total',
    'herald_delivery_duration_seconds_bucket',
    'herald_consumer_lag_records',
    'herald_oldest_unfinished_age_seconds',
    'herald_breaker_open',
    'herald_crash_loop_dead_letters_total',
    'herald_partitions_held',
  ])
    assert.ok(shown.has(metric), `no panel shows ${metric}`)
  assert.ok(queries.some((q) => /herald_deliveries_total\{[^}]*outcome="dead_lettered"/.test(q)))
  assert.ok(queries.some((q) => /max by \(channel, partition\) \(herald_consumer_lag_records/.test(q)))
  const ids = dashboard.panels.map((p) => (p as { id?: number }).id)
  assert.equal(new Set(ids).size, ids.length, 'unique panel ids')
})
