// Rules through the api, against the real broker: validation, roles, create/replace/read/delete and what
// each write puts on the rules topic (key, partition, audit headers), the list by name and source in pages,
// and the state of each rule's alarm. The rules service and the alarms processor are not running: where a
// test needs what they write (an activation, an effective state), the test writes those records itself.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { AlarmPartitioner, alarmPartition } from '@herald/shared/alarms/partitioner'
import type { Activation, Effective } from '@herald/shared/alarms/schemas'
import { queryFailingAlarmName } from '@herald/shared/rules/schemas'
import { rulesTopicName } from '@herald/shared/rules/topics'
import { alarmTopicNames } from '@herald/shared/topics'
import type { Producer } from 'kafkajs'
import { type ApiAnswer, startTestApi, type TestApi } from '../../test/support/api.ts'
import { readConfigRecords } from '../../test/support/config-records.ts'
import { testContext } from '../../test/support/context.ts'
import { eventually } from '../../test/support/service-process.ts'

const ctx = testContext()
const ns = ctx.namespace('api-rules')
const topic = rulesTopicName(ns.prefix)
const alarmTopics = alarmTopicNames(ns.prefix)
const partitions = 3
const admin = { authorization: 'Bearer s3cret', 'content-type': 'application/json' }
const sender = { authorization: 'Bearer other', 'content-type': 'application/json' }
let api: TestApi
/** Writes what the rules service and the alarms processor would, with the alarm partitioner. */
let services: Producer

const apiReady = ctx.ready.then(async () => {
  api = await startTestApi(ns, {
    brokers: ctx.brokers,
    redisUrl: ctx.redisUrl,
    env: {
      TOPIC_PARTITIONS: String(partitions),
      API_KEYS: 'ops:s3cret:admin,ci:other',
      PRODUCE_TIMEOUT_MS: '5000',
    },
  })
  ctx.teardown(() => api.stop())
  services = ctx.kafka.producer({ allowAutoTopicCreation: false, createPartitioner: AlarmPartitioner })
  await services.connect()
  ctx.teardown(() => services.disconnect())
})

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = admin) {
  await apiReady
  return api.call(method, path, body, headers)
}

type Details = Array<{ field: string; reason: string }>
const fieldsOf = (body: { details?: Details }) =>
  Object.fromEntries((body.details ?? []).map((d) => [d.field, d.reason]))

const diskRule = {
  query: 'max(disk_used_ratio)',
  intervalSecs: 30,
  repeatIntervalSecs: 600,
  warn: { value: 0.8, message: 'disk over 80%' },
  critical: { value: 0.9, message: 'disk over 90%' },
}

describe('writing and reading rules', () => {
  test('the rules topic exists, compacted, with TOPIC_PARTITIONS partitions', async () => {
    await apiReady
    const [metadata] = (await ctx.admin.fetchTopicMetadata({ topics: [topic] })).topics
    assert.equal(metadata?.partitions.length, partitions)
    const configs = await ctx.admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: 2, name: topic, configNames: ['cleanup.policy'] }],
    })
    assert.equal(configs.resources[0]?.configEntries[0]?.configValue, 'compact')
  })

  test('an admin creates a rule (201, defaults applied), replaces it (200), and any key reads it with who wrote it', async () => {
    const created = await call('PUT', '/rules/disk', diskRule)
    assert.equal(created.status, 201, JSON.stringify(created.body))
    assert.deepEqual(created.body, { name: 'disk', source: 'prometheus', comparison: 'above', ...diskRule })
    const replaced = await call('PUT', '/rules/disk', {
      ...diskRule,
      name: 'disk',
      sustainSecs: 120,
      labels: { team: 'storage' },
    })
    assert.equal(replaced.status, 200, JSON.stringify(replaced.body))
    const read = await call('GET', '/rules/disk', undefined, sender)
    assert.equal(read.status, 200)
    const { audit, ...rest } = read.body
    assert.deepEqual(rest, {
      name: 'disk',
      rule: {
        name: 'disk',
        source: 'prometheus',
        comparison: 'above',
        ...diskRule,
        sustainSecs: 120,
        labels: { team: 'storage' },
      },
      alarm: { activation: null, effective: null, queryFailing: false },
    })
    assert.deepEqual([audit.user, audit.source], ['ops', 'api'])
    assert.ok(audit.host && audit.host !== '-', 'the host header is set')
  })

  test('validation errors are 400 with each field and reason, and nothing is written', async () => {
    const bad = await call('PUT', '/rules/bad', {
      source: 'graphite',
      query: ' ',
      intervalSecs: 0,
      repeatIntervalSecs: 1.5,
      comparison: 'over',
      warn: { value: 'high', message: 'x' },
      colour: 'red',
    })
    assert.equal(bad.status, 400)
    assert.equal(bad.body.error, 'invalid_request')
    const fields = fieldsOf(bad.body)
    assert.match(fields.source ?? '', /one of prometheus, alerts-engine/)
    assert.match(fields.query ?? '', /must not be empty/)
    assert.match(fields.intervalSecs ?? '', /at least 1/)
    assert.match(fields.repeatIntervalSecs ?? '', /whole number of seconds/)
    assert.match(fields.comparison ?? '', /above or below/)
    assert.match(fields['warn.value'] ?? '', /must be a number/)
    assert.match(fields['(body)'] ?? '', /unknown field\(s\): colour/)

    const noThreshold = await call('PUT', '/rules/bad', {
      query: 'q',
      intervalSecs: 10,
      repeatIntervalSecs: 60,
    })
    assert.deepEqual(fieldsOf(noThreshold.body), {
      warn: 'warn or critical is required (a rule needs at least one threshold)',
    })
    const wrongSide = await call('PUT', '/rules/bad', { ...diskRule, comparison: 'below' })
    assert.deepEqual(fieldsOf(wrongSide.body), {
      'critical.value': 'must be at or below warn.value (0.8) with comparison below',
    })
    const missing = await call('PUT', '/rules/bad', { warn: diskRule.warn })
    assert.deepEqual(Object.keys(fieldsOf(missing.body)).sort(), [
      'intervalSecs',
      'query',
      'repeatIntervalSecs',
    ])
    const mismatch = await call('PUT', '/rules/bad', { ...diskRule, name: 'other' })
    assert.deepEqual(fieldsOf(mismatch.body), { name: 'must match the path ("bad") or be left out' })
    const notObject = await call('PUT', '/rules/bad', [diskRule])
    assert.deepEqual(fieldsOf(notObject.body), { '(body)': 'must be a JSON object' })
    const notJson = await call('PUT', '/rules/bad', 'query=up', { ...admin, 'content-type': 'text/plain' })
    assert.equal(notJson.status, 415)

    const reserved = await call('PUT', '/rules/herald.mine', diskRule)
    assert.equal(reserved.status, 400)
    assert.match(fieldsOf(reserved.body).name ?? '', /must not start with "herald\."/)
    const spaces = await call('GET', `/rules/${encodeURIComponent('no spaces')}`)
    assert.equal(spaces.status, 400)
    assert.match(fieldsOf(spaces.body).name ?? '', /letters, digits/)
    const long = await call('GET', `/rules/${'r'.repeat(102)}`)
    assert.match(fieldsOf(long.body).name ?? '', /at most 101 characters/)

    assert.equal((await call('GET', '/rules/bad')).status, 404, 'nothing was written')
    assert.equal((await call('GET', '/rules/herald.mine')).status, 400)
  })

  test('writes need an admin key, reads take any key, a request without a key is 401, a wrong method 405', async () => {
    const put = await call('PUT', '/rules/disk', diskRule, sender)
    assert.equal(put.status, 403)
    assert.match(put.body.message, /changing rules need an admin API key/)
    assert.equal((await call('DELETE', '/rules/disk', undefined, sender)).status, 403)
    assert.equal((await call('GET', '/rules/disk', undefined, sender)).status, 200)
    assert.equal((await call('GET', '/rules', undefined, sender)).status, 200)
    assert.equal((await call('GET', '/rules/disk', undefined, {})).status, 401)
    assert.equal(
      (await call('PUT', '/rules/disk', diskRule, { 'content-type': 'application/json' })).status,
      401,
    )
    const patch = await call('PATCH', '/rules/disk', {})
    assert.equal(patch.status, 405)
    assert.equal(patch.headers.get('allow'), 'GET, PUT, DELETE')
    const post = await call('POST', '/rules', diskRule)
    assert.equal(post.status, 405)
    assert.equal(post.headers.get('allow'), 'GET')
  })

  test('deleting writes a tombstone; an unknown rule is 404; every write is on the partition of its name with the audit headers', async () => {
    const rule = { ...diskRule, source: 'alerts-engine', query: 'disk' }
    assert.equal((await call('PUT', '/rules/temp', rule)).status, 201)
    assert.equal((await call('DELETE', '/rules/temp')).status, 204)
    const gone = await call('GET', '/rules/temp')
    assert.equal(gone.status, 404)
    assert.equal(gone.body.message, 'no rule "temp"')
    assert.equal((await call('DELETE', '/rules/temp')).status, 404)

    const records = (await readConfigRecords(ctx.kafka, topic)).filter((r) => r.key === 'temp')
    // Kafka's default partitioner on the bare name (what alarmPartition computes), as the evaluators expect.
    const own = alarmPartition('temp', partitions)
    assert.deepEqual(
      records.map((r) => [
        r.value === null ? null : JSON.parse(r.value),
        r.partition,
        r.headers['herald-user'],
        r.headers['herald-source'],
      ]),
      [
        [{ name: 'temp', comparison: 'above', ...rule }, own, 'ops', 'api'],
        [null, own, 'ops', 'api'],
      ],
    )
    for (const r of records) assert.ok(r.headers['herald-host'], 'herald-host is set')
  })
})

describe('the list', () => {
  const names = (body: ApiAnswer['body']) => (body.rules as Array<{ name: string }>).map((r) => r.name)
  const suite = ['list-a', 'list-b', 'list-c', 'list-d', 'list-e']
  const sources: Record<string, string> = { 'list-b': 'alerts-engine', 'list-d': 'alerts-engine' }

  test('pages of `limit` by name with a cursor; source filters before the page is cut', async () => {
    for (const name of suite) {
      const put = await call('PUT', `/rules/${name}`, { ...diskRule, source: sources[name] ?? 'prometheus' })
      assert.equal(put.status, 201, JSON.stringify(put.body))
    }
    const seen: string[][] = []
    let cursor: string | null = null
    do {
      const query: string = `/rules?limit=2${cursor ? `&cursor=${cursor}` : ''}`
      const page = await call('GET', query, undefined, sender)
      assert.equal(page.status, 200)
      seen.push(names(page.body).filter((n) => n.startsWith('list-')))
      cursor = page.body.nextCursor
    } while (cursor && seen.length < 20)
    assert.deepEqual(seen.flat(), suite, 'every rule once, in order of name')
    assert.ok(seen.every((page) => page.length <= 2))

    const first = await call('GET', '/rules?source=alerts-engine&limit=1')
    assert.deepEqual(names(first.body), ['list-b'])
    assert.equal(first.body.rules[0].rule.source, 'alerts-engine')
    const second = await call('GET', `/rules?source=alerts-engine&limit=1&cursor=${first.body.nextCursor}`)
    assert.deepEqual(names(second.body), ['list-d'])
    assert.equal(second.body.nextCursor, null, 'no cursor when nothing more matches')
    const all = await call('GET', '/rules?limit=500')
    assert.deepEqual(
      all.body.rules[0],
      (await call('GET', `/rules/${all.body.rules[0].name}`)).body,
      'an item of the list is what GET /rules/:name answers',
    )
  })

  test('a bad source, limit or cursor, or an unknown parameter, is a 400 naming it', async () => {
    assert.deepEqual(fieldsOf((await call('GET', '/rules?source=graphite')).body), {
      source: 'must be one of prometheus, alerts-engine',
    })
    assert.match(fieldsOf((await call('GET', '/rules?limit=501')).body).limit ?? '', /at most 500/)
    assert.match(fieldsOf((await call('GET', '/rules?limit=0')).body).limit ?? '', /at least 1/)
    assert.deepEqual(fieldsOf((await call('GET', '/rules?cursor=%25%25')).body), {
      cursor: 'is not a nextCursor this api returned',
    })
    assert.deepEqual(Object.keys(fieldsOf((await call('GET', '/rules?colour=red')).body)), ['(query)'])
  })
})

describe("a rule's alarm", () => {
  async function writeAsService(alarmTopic: string, key: string, value: unknown, user: string) {
    await apiReady
    await services.send({
      topic: alarmTopic,
      acks: -1,
      messages: [
        {
          key,
          value: JSON.stringify(value),
          headers: { 'herald-user': user, 'herald-source': user, 'herald-host': `${user}-1` },
        },
      ],
    })
  }

  test("GET shows the activation and effective state of the rule's alarm, and whether its query keeps failing", async () => {
    assert.equal((await call('PUT', '/rules/cpu', { ...diskRule, query: 'cpu' })).status, 201)
    const at = 1_763_000_000_000
    const activation: Activation = {
      severity: 'HIGH',
      message: 'disk over 80%',
      value: 0.85,
      source: 'rule:cpu',
      at,
    }
    await writeAsService(alarmTopics.activations, 'cpu', activation, 'rules')
    const effective: Effective = {
      name: 'cpu',
      state: 'active',
      active: true,
      effectivelyActive: true,
      severity: 'HIGH',
      overrides: [],
      since: at,
      memory: { events: 1, reminders: 0 },
    }
    await writeAsService(alarmTopics.effective, 'cpu', effective, 'alarms')
    const view = await eventually("the api read the rule's alarm", async () => {
      const answer = await call('GET', '/rules/cpu', undefined, sender)
      // Activations and effective states are read by two consumers: neither waits for the other.
      return answer.body.alarm?.effective && answer.body.alarm?.activation ? answer.body : undefined
    })
    const { memory: _processorsOwn, ...shown } = effective
    assert.deepEqual(view.alarm, { activation, effective: shown, queryFailing: false })

    const failing: Activation = { severity: 'MEDIUM', message: 'query failing', source: 'rule:cpu', at }
    await writeAsService(alarmTopics.activations, queryFailingAlarmName('cpu'), failing, 'rules')
    const failed = await eventually('the api read the query-failing activation', async () => {
      const answer = await call('GET', '/rules/cpu', undefined, sender)
      return answer.body.alarm?.queryFailing ? answer.body : undefined
    })
    assert.deepEqual(failed.alarm, { activation, effective: shown, queryFailing: true })
    const listed = await call('GET', '/rules?limit=500')
    const item = (listed.body.rules as Array<{ name: string }>).find((r) => r.name === 'cpu')
    assert.deepEqual(item, failed, 'the list shows the same')
  })
})
