// The PromQL in deploy/ (alerts, Prometheus adapter rules, KEDA triggers, the Grafana dashboard): it parses,
// it names only metrics the services register (here against registries built in-process;
// metrics.int.test.ts checks the same against the /metrics of a running api, distributor, router, alarms
// processor and rules evaluator), the retention alert keeps its documented fraction of the topics' retention,
// and the dashboard shows what an operator needs.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { channels } from '@herald/shared/config'
import { topicNames, topicSpecs } from '@herald/shared/topics'
import { createAlarmsMetrics } from '../../alarms/src/metrics.ts'
import { createApiMetrics } from '../../api/src/metrics.ts'
import { createDistributorMetrics } from '../../distributor/src/metrics.ts'
import { createRouterMetrics } from '../../router/src/metrics.ts'
import { createRulesMetrics } from '../../rules/src/metrics.ts'
import {
  adapterRules,
  adapterSeries,
  alertRules,
  expandAdapterQuery,
  grafanaDashboard,
  isRouterRule,
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

test('every metric named in deploy/ is registered by the api, the distributor, the router, alarms or rules', async () => {
  const text = [
    await createApiMetrics().registry.metrics(),
    await createDistributorMetrics({ channel: 'email' }).registry.metrics(),
    await createRouterMetrics().registry.metrics(),
    await createAlarmsMetrics().registry.metrics(),
    await createRulesMetrics().registry.metrics(),
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
    'herald_alarm_timer_lateness_seconds_bucket',
    'herald_alarm_records_unreadable_total',
    'herald_alarm_partitions_owned',
    'herald_rule_evaluations_total',
    'herald_rule_evaluation_lateness_seconds_bucket',
    'herald_rule_partitions_owned',
    'herald_rule_engine_calls_total',
  ])
    assert.ok(watched.has(metric), `no alert watches ${metric}`)
})

test('the adapter rules turn the leader-only lag and age series into per-channel external metrics', () => {
  const rules = adapterRules().filter((r) => !isRouterRule(r))
  const bySeries = new Map(rules.map((r) => [adapterSeries(r), r]))
  assert.equal(bySeries.size, rules.length, 'one channel rule per series')
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

test('the adapter rules give the router its lag and age over every topic it follows, by its service label', async () => {
  const rules = adapterRules().filter(isRouterRule)
  const bySeries = new Map(rules.map((r) => [adapterSeries(r), r]))
  assert.equal(bySeries.size, rules.length, 'one router rule per series')
  for (const series of ['herald_consumer_lag_records', 'herald_oldest_unfinished_age_seconds']) {
    const rule = bySeries.get(series)
    assert.ok(rule, `a router rule for ${series}`)
    assert.match(rule.seriesQuery, /namespace!=""/)
    assert.match(rule.name.as, /^herald_router_/)
    assert.match(rule.metricsQuery, /<<\.Series>>\{<<\.LabelMatchers>>\}/)
    assert.doesNotMatch(expandAdapterQuery(rule), /channel/)
  }
  // One topic's partition 0 is not another's: the max is per topic and partition before the sum.
  const lag = bySeries.get('herald_consumer_lag_records')
  assert.match(
    lag?.metricsQuery ?? '',
    /^sum by \(service\) \(max by \(namespace, service, topic, partition\)/,
  )
  // The selector the router's HPA and KEDA trigger use is a label every router series carries.
  const metrics = createRouterMetrics()
  metrics.lag.set({ topic: 'herald.alarm-events', partition: '0' }, 3)
  metrics.oldestUnfinishedAge.set({ topic: 'herald.alarm-events' }, 5)
  const text = await metrics.registry.metrics()
  for (const series of bySeries.keys()) {
    const line = text.split('\n').find((l) => l.startsWith(`${series}{`)) ?? ''
    assert.match(line, /service="router"/, series)
    assert.match(line, /topic="herald\.alarm-events"/, series)
  }
})

test('the KEDA prometheus triggers query the lag of their own channel, and the router its own', () => {
  const prometheus = kedaTriggers().filter((t) => t.type === 'prometheus')
  const triggers = prometheus.filter((t) => t.scaledObject.startsWith('herald-distributor-'))
  assert.equal(triggers.length, channels.length)
  const routers = prometheus.filter((t) => t.scaledObject === 'herald-router')
  assert.ok(
    routers.some((t) => /herald_consumer_lag_records\{[^}]*service="router"/.test(t.metadata.query ?? '')),
  )
  for (const t of routers) {
    assert.match(t.metadata.query ?? '', /\{[^}]*service="router"/)
    assert.equal(t.metadata.ignoreNullValues, 'false')
  }
  assert.equal(prometheus.length, triggers.length + routers.length)
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
