// Alarms through the api, against the real broker: registrations, the operators' actions and what they
// write (keys, partitions, audit headers), shelve limits, roles, and the list with effective states. The
// alarms processor is not running: where a test needs what it writes (a latch, effective states), the test
// writes those records itself, as the processor would.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { AlarmPartitioner, alarmPartition } from '@herald/shared/alarms/partitioner'
import type { Effective } from '@herald/shared/alarms/schemas'
import { alarmTopicNames } from '@herald/shared/topics'
import type { Producer } from 'kafkajs'
import { type ApiAnswer, startTestApi, type TestApi } from '../../test/support/api.ts'
import { readConfigRecords } from '../../test/support/config-records.ts'
import { testContext } from '../../test/support/context.ts'
import { eventually } from '../../test/support/service-process.ts'

const ctx = testContext()
const ns = ctx.namespace('api-alarms')
const topics = alarmTopicNames(ns.prefix)
const partitions = 3
const admin = { authorization: 'Bearer s3cret', 'content-type': 'application/json' }
const sender = { authorization: 'Bearer other', 'content-type': 'application/json' }
let api: TestApi
/** Writes what the alarms processor would (latches, effective states), with the alarm partitioner. */
let processor: Producer

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
  processor = ctx.kafka.producer({ allowAutoTopicCreation: false, createPartitioner: AlarmPartitioner })
  await processor.connect()
  ctx.teardown(() => processor.disconnect())
})

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = admin) {
  await apiReady
  return api.call(method, path, body, headers)
}

async function writeAsProcessor(topic: string, key: string, value: unknown): Promise<void> {
  await apiReady
  await processor.send({
    topic,
    acks: -1,
    messages: [
      {
        key,
        value: value === null ? null : JSON.stringify(value),
        headers: { 'herald-user': 'alarms', 'herald-source': 'alarms', 'herald-host': 'processor-1' },
      },
    ],
  })
}

type Details = Array<{ field: string; reason: string }>
const fieldsOf = (body: { details?: Details }) =>
  Object.fromEntries((body.details ?? []).map((d) => [d.field, d.reason]))

/**
 * An alarm name whose override keys the default partitioner would send to another partition than the
 * name's own, so that a record on the name's partition shows the alarm partitioner at work.
 */
function spreadName(prefix: string): string {
  for (let i = 0; ; i++) {
    const name = `${prefix}-${i}`
    const own = alarmPartition(name, partitions)
    const kinds = ['latched', 'shelved', 'disabled']
    if (kinds.every((kind) => alarmPartition(`${name}/${kind}`, partitions) !== own)) return name
  }
}

describe('registrations', () => {
  test('an admin registers an alarm (201), replaces it (200), and any key reads it with its state', async () => {
    const registration = { severity: 'HIGH', latching: true, labels: { team: 'storage' } }
    const created = await call('PUT', '/alarms/disk', registration)
    assert.equal(created.status, 201, JSON.stringify(created.body))
    assert.deepEqual(created.body, { name: 'disk', ...registration })
    const replaced = await call('PUT', '/alarms/disk', {
      ...registration,
      name: 'disk',
      docUrl: 'https://runbooks.example.com/disk',
    })
    assert.equal(replaced.status, 200, JSON.stringify(replaced.body))
    const read = await call('GET', '/alarms/disk', undefined, sender)
    assert.equal(read.status, 200)
    assert.deepEqual(read.body, {
      name: 'disk',
      registration: { name: 'disk', ...registration, docUrl: 'https://runbooks.example.com/disk' },
      activation: null,
      overrides: {},
      effective: null,
      effectiveAudit: null,
    })
    const defaults = await call('PUT', '/alarms/plain', {})
    assert.deepEqual(
      defaults.body,
      { name: 'plain', severity: 'MEDIUM', latching: false },
      'defaults applied',
    )
  })

  test('validation errors are 400 with each field and reason, and nothing is written', async () => {
    const bad = await call('PUT', '/alarms/bad', {
      severity: 'high',
      maxShelveSeconds: -1,
      onDelaySeconds: 1.5,
      docUrl: 'ftp://example.com/doc',
      colour: 'red',
    })
    assert.equal(bad.status, 400)
    assert.equal(bad.body.error, 'invalid_request')
    const fields = fieldsOf(bad.body)
    assert.match(fields.severity ?? '', /one of LOW, MEDIUM, HIGH, CRITICAL/)
    assert.match(fields.maxShelveSeconds ?? '', /at least 0/)
    assert.match(fields.onDelaySeconds ?? '', /whole number of seconds/)
    assert.match(fields.docUrl ?? '', /http\(s\) URL/)
    assert.match(fields['(body)'] ?? '', /unknown field\(s\): colour/)
    const mismatch = await call('PUT', '/alarms/bad', { name: 'other' })
    assert.deepEqual(fieldsOf(mismatch.body), { name: 'must match the path ("bad") or be left out' })
    const badName = await call('GET', `/alarms/${encodeURIComponent('no spaces')}`)
    assert.equal(badName.status, 400)
    assert.match(fieldsOf(badName.body).name ?? '', /letters, digits/)
    const notJson = await call('PUT', '/alarms/bad', 'severity=HIGH', {
      ...admin,
      'content-type': 'text/plain',
    })
    assert.equal(notJson.status, 415)
    assert.equal((await call('GET', '/alarms/bad')).status, 404, 'nothing was written')

    const activation = await call('POST', '/alarms/disk/activate', { severity: 'loud', value: 'high', at: 1 })
    assert.equal(activation.status, 400)
    assert.deepEqual(Object.keys(fieldsOf(activation.body)).sort(), ['(body)', 'severity', 'value'])
    assert.match(fieldsOf(activation.body)['(body)'] ?? '', /unknown field\(s\): at/, 'at is set by the api')
    const extra = await call('POST', '/alarms/disk/clear', { now: true })
    assert.equal(extra.status, 400, 'an action without a body takes {} at most')
  })

  test('a maskedBy naming the alarm itself, or closing a cycle of masks, is refused', async () => {
    const self = await call('PUT', '/alarms/loop', { maskedBy: 'loop' })
    assert.deepEqual(fieldsOf(self.body), { maskedBy: 'must name another alarm, not this one' })
    assert.equal((await call('PUT', '/alarms/p1', {})).status, 201)
    assert.equal((await call('PUT', '/alarms/p2', { maskedBy: 'p1' })).status, 201)
    assert.equal((await call('PUT', '/alarms/p3', { maskedBy: 'p2' })).status, 201)
    const cycle = await call('PUT', '/alarms/p1', { maskedBy: 'p3' })
    assert.equal(cycle.status, 400)
    assert.deepEqual(fieldsOf(cycle.body), { maskedBy: 'would make a mask cycle: p1 → p3 → p2 → p1' })
    assert.equal((await call('GET', '/alarms/p1')).body.registration.maskedBy, undefined, 'p1 unchanged')
    const unknownParent = await call('PUT', '/alarms/p4', { maskedBy: 'registered-later' })
    assert.equal(unknownParent.status, 201, 'a parent may be registered after its child')
  })

  test('writes need an admin key, reads take any key, a request without a key is 401, a wrong method 405', async () => {
    const put = await call('PUT', '/alarms/disk', {}, sender)
    assert.equal(put.status, 403)
    assert.match(put.body.message, /admin API key/)
    assert.equal((await call('DELETE', '/alarms/disk', undefined, sender)).status, 403)
    for (const action of ['activate', 'clear', 'ack', 'shelve', 'unshelve', 'disable', 'enable']) {
      assert.equal((await call('POST', `/alarms/disk/${action}`, {}, sender)).status, 403, action)
    }
    assert.equal((await call('GET', '/alarms', undefined, sender)).status, 200)
    assert.equal((await call('GET', '/alarms/disk', undefined, {})).status, 401)
    const patch = await call('PATCH', '/alarms/disk', {})
    assert.equal(patch.status, 405)
    assert.equal(patch.headers.get('allow'), 'GET, PUT, DELETE')
    const getAck = await call('GET', '/alarms/disk/ack')
    assert.equal(getAck.status, 405)
    assert.equal(getAck.headers.get('allow'), 'POST')
  })

  test('unregistering writes a tombstone; an unknown alarm is 404 for every endpoint', async () => {
    assert.equal((await call('PUT', '/alarms/temp', {})).status, 201)
    assert.equal((await call('DELETE', '/alarms/temp')).status, 204)
    assert.equal((await call('GET', '/alarms/temp')).status, 404)
    assert.equal((await call('DELETE', '/alarms/temp')).status, 404)
    const bodies: Record<string, unknown> = { shelve: { for: 60, reason: 'x' }, disable: { reason: 'x' } }
    for (const action of ['activate', 'clear', 'ack', 'shelve', 'unshelve', 'disable', 'enable']) {
      const answer = await call('POST', `/alarms/temp/${action}`, bodies[action] ?? {})
      assert.equal(answer.status, 404, action)
      assert.equal(answer.body.message, 'no alarm "temp"')
    }
    const records = (await readConfigRecords(ctx.kafka, topics.registered)).filter((r) => r.key === 'temp')
    assert.deepEqual(
      records.map((r) => [
        r.value === null,
        r.partition,
        r.headers['herald-user'],
        r.headers['herald-source'],
      ]),
      [
        [false, alarmPartition('temp', partitions), 'ops', 'api'],
        [true, alarmPartition('temp', partitions), 'ops', 'api'],
      ],
    )
  })
})

describe('actions', () => {
  test('activate writes an activation; an update keeps its `at`; after a clear a new one starts', async () => {
    assert.equal((await call('PUT', '/alarms/pump', { severity: 'LOW' })).status, 201)
    const before = Date.now()
    const first = await call('POST', '/alarms/pump/activate', { message: 'pressure low' })
    assert.equal(first.status, 202, JSON.stringify(first.body))
    const at = first.body.value.at as number
    assert.ok(at >= before && at <= Date.now(), 'at is the time of the activation')
    assert.deepEqual(first.body, {
      name: 'pump',
      action: 'activate',
      topic: topics.activations,
      key: 'pump',
      value: { message: 'pressure low', source: 'api', at },
    })
    const update = await call('POST', '/alarms/pump/activate', {
      severity: 'HIGH',
      value: 97.5,
      source: 'rule-7',
    })
    assert.equal(update.status, 202)
    assert.deepEqual(update.body.value, { severity: 'HIGH', value: 97.5, source: 'rule-7', at })
    assert.deepEqual(
      (await call('GET', '/alarms/pump', undefined, sender)).body.activation,
      update.body.value,
    )

    const clear = await call('POST', '/alarms/pump/clear', {})
    assert.equal(clear.status, 202)
    assert.deepEqual(clear.body, {
      name: 'pump',
      action: 'clear',
      topic: topics.activations,
      key: 'pump',
      value: null,
    })
    assert.equal((await call('GET', '/alarms/pump')).body.activation, null)
    const again = await call('POST', '/alarms/pump/clear', {})
    assert.equal(again.status, 409)
    assert.equal(again.body.message, 'alarm "pump" is not active: nothing to clear')
    const cleared = Date.now()
    const next = await call('POST', '/alarms/pump/activate', {})
    assert.ok(next.body.value.at >= cleared, 'a new trip has its own at')

    const records = (await readConfigRecords(ctx.kafka, topics.activations)).filter((r) => r.key === 'pump')
    assert.equal(records.length, 4)
    for (const r of records) {
      assert.equal(r.partition, alarmPartition('pump', partitions))
      assert.deepEqual([r.headers['herald-user'], r.headers['herald-source']], ['ops', 'api'])
      assert.ok(r.headers['herald-host'])
    }
  })

  test('a shelve beyond maxShelveSeconds is refused naming the field; with maxShelveSeconds 0 every one is', async () => {
    assert.equal((await call('PUT', '/alarms/fan', { maxShelveSeconds: 60 })).status, 201)
    const tooLong = await call('POST', '/alarms/fan/shelve', { for: 61, reason: 'maintenance' })
    assert.equal(tooLong.status, 400)
    assert.match(
      fieldsOf(tooLong.body).for ?? '',
      /at most 60 seconds from now .*maxShelveSeconds of alarm fan.*asked for 61/,
    )
    const untilTooLate = await call('POST', '/alarms/fan/shelve', {
      until: new Date(Date.now() + 120_000).toISOString(),
      reason: 'maintenance',
    })
    assert.equal(untilTooLate.status, 400)
    assert.match(fieldsOf(untilTooLate.body).until ?? '', /at most 60 seconds/)
    const oneshot = await call('POST', '/alarms/fan/shelve', { oneshot: true, reason: 'maintenance' })
    assert.equal(oneshot.status, 400)
    assert.match(
      fieldsOf(oneshot.body).until ?? '',
      /is required: alarm fan may be shelved for at most 60 seconds/,
    )
    const past = await call('POST', '/alarms/fan/shelve', { until: Date.now() - 1000, reason: 'late' })
    assert.deepEqual(fieldsOf(past.body), { until: 'must be in the future' })
    const both = await call('POST', '/alarms/fan/shelve', {
      for: 10,
      until: Date.now() + 10_000,
      reason: 'x',
    })
    assert.deepEqual(fieldsOf(both.body), { until: 'give for or until, not both' })
    const neither = await call('POST', '/alarms/fan/shelve', { reason: 'x' })
    assert.deepEqual(Object.keys(fieldsOf(neither.body)), ['for'])
    const noReason = await call('POST', '/alarms/fan/shelve', { for: 10 })
    assert.deepEqual(Object.keys(fieldsOf(noReason.body)), ['reason'])

    const before = Date.now()
    const ok = await call('POST', '/alarms/fan/shelve', { for: 60, reason: 'maintenance' })
    assert.equal(ok.status, 202, JSON.stringify(ok.body))
    const { until, ...rest } = ok.body.value
    assert.deepEqual(rest, { kind: 'shelved', reason: 'maintenance', user: 'ops' })
    assert.ok(until >= before + 60_000 && until <= Date.now() + 60_000)
    assert.equal(ok.body.key, 'fan/shelved')

    assert.equal((await call('PUT', '/alarms/siren', { maxShelveSeconds: 0 })).status, 201)
    for (const body of [{ for: 1 }, { oneshot: true }, { until: Date.now() + 5000 }]) {
      const refused = await call('POST', '/alarms/siren/shelve', { ...body, reason: 'please' })
      assert.equal(refused.status, 400, JSON.stringify(body))
      const [problem] = refused.body.details as Details
      assert.match(problem?.reason ?? '', /alarm siren may not be shelved \(its maxShelveSeconds is 0\)/)
      assert.equal(problem?.field, 'for' in body ? 'for' : 'until')
    }
    assert.deepEqual((await call('GET', '/alarms/siren')).body.overrides, {}, 'nothing was written')

    assert.equal((await call('PUT', '/alarms/free', {})).status, 201)
    const forever = await call('POST', '/alarms/free/shelve', { oneshot: true, reason: 'until it clears' })
    assert.equal(forever.status, 202)
    assert.deepEqual(forever.body.value, {
      kind: 'shelved',
      oneshot: true,
      reason: 'until it clears',
      user: 'ops',
    })
  })

  test('ack, unshelve and enable write tombstones of their overrides, on the partition of the alarm; with nothing to undo they are 409', async () => {
    const name = spreadName('lift')
    assert.equal((await call('PUT', `/alarms/${name}`, { latching: true })).status, 201)
    const early = await call('POST', `/alarms/${name}/ack`, {})
    assert.equal(early.status, 409)
    assert.equal(early.body.message, `alarm "${name}" is not latched: nothing to acknowledge`)

    // The processor latches the alarm; the api sees the override once it has read it.
    const latchedAt = Date.now()
    await writeAsProcessor(topics.overrides, `${name}/latched`, { kind: 'latched', at: latchedAt })
    await eventually('the api read the latch', async () => {
      const overrides = (await call('GET', `/alarms/${name}`)).body.overrides
      return overrides.latched ? true : undefined
    })
    const ack = await call('POST', `/alarms/${name}/ack`, {})
    assert.equal(ack.status, 202, JSON.stringify(ack.body))
    assert.deepEqual(ack.body, {
      name,
      action: 'ack',
      topic: topics.overrides,
      key: `${name}/latched`,
      value: null,
    })
    assert.equal((await call('POST', `/alarms/${name}/ack`, {})).status, 409, 'the tombstone was read back')

    assert.equal(
      (await call('POST', `/alarms/${name}/shelve`, { for: 600, reason: 'inspection' })).status,
      202,
    )
    assert.equal((await call('GET', `/alarms/${name}`)).body.overrides.shelved.reason, 'inspection')
    const unshelve = await call('POST', `/alarms/${name}/unshelve`, {})
    assert.equal(unshelve.status, 202)
    assert.equal(unshelve.body.key, `${name}/shelved`)
    assert.equal(unshelve.body.value, null)
    assert.equal((await call('POST', `/alarms/${name}/unshelve`, {})).status, 409)

    const noReason = await call('POST', `/alarms/${name}/disable`, {})
    assert.equal(noReason.status, 400)
    assert.deepEqual(Object.keys(fieldsOf(noReason.body)), ['reason'])
    const disable = await call('POST', `/alarms/${name}/disable`, { reason: 'replaced by lift-b' })
    assert.equal(disable.status, 202)
    assert.deepEqual(disable.body.value, { kind: 'disabled', reason: 'replaced by lift-b', user: 'ops' })
    const enable = await call('POST', `/alarms/${name}/enable`, {})
    assert.equal(enable.status, 202)
    assert.deepEqual([enable.body.key, enable.body.value], [`${name}/disabled`, null])
    assert.equal((await call('POST', `/alarms/${name}/enable`, {})).status, 409)
    assert.deepEqual((await call('GET', `/alarms/${name}`)).body.overrides, {})

    const own = alarmPartition(name, partitions)
    const records = (await readConfigRecords(ctx.kafka, topics.overrides)).filter((r) =>
      r.key.startsWith(`${name}/`),
    )
    assert.deepEqual(
      records.map((r) => [r.key, r.value === null ? null : JSON.parse(r.value).kind]),
      [
        [`${name}/latched`, 'latched'],
        [`${name}/latched`, null],
        [`${name}/shelved`, 'shelved'],
        [`${name}/shelved`, null],
        [`${name}/disabled`, 'disabled'],
        [`${name}/disabled`, null],
      ],
    )
    for (const r of records) {
      assert.equal(r.partition, own, `${r.key} is on the partition of ${name}`)
      assert.notEqual(
        alarmPartition(r.key, partitions),
        own,
        'the default partitioner would have put it elsewhere',
      )
    }
    for (const r of records.slice(1)) {
      assert.deepEqual([r.headers['herald-user'], r.headers['herald-source']], ['ops', 'api'], r.key)
      assert.ok(r.headers['herald-host'])
    }
    const registration = (await readConfigRecords(ctx.kafka, topics.registered)).find((r) => r.key === name)
    assert.equal(registration?.partition, own)
  })
})

describe('the list', () => {
  const suite = ['list-a', 'list-b', 'list-c', 'list-d', 'list-e']
  const teams: Record<string, string> = {
    'list-a': 'storage',
    'list-b': 'storage',
    'list-c': 'network',
    'list-d': 'network',
    'list-e': 'network',
  }
  const states: Record<string, Effective['state']> = {
    'list-a': 'active',
    'list-b': 'normal',
    'list-c': 'active',
    'list-d': 'latched',
  }
  const names = (body: ApiAnswer['body']) => (body.alarms as Array<{ name: string }>).map((a) => a.name)

  test('the alarm topics exist, compacted, with TOPIC_PARTITIONS partitions', async () => {
    await apiReady
    const metadata = await ctx.admin.fetchTopicMetadata({ topics: Object.values(topics) })
    for (const topic of metadata.topics) assert.equal(topic.partitions.length, partitions, topic.name)
    const configs = await ctx.admin.describeConfigs({
      includeSynonyms: false,
      resources: Object.values(topics).map((name) => ({ type: 2, name, configNames: ['cleanup.policy'] })),
    })
    for (const resource of configs.resources) {
      assert.equal(resource.configEntries[0]?.configValue, 'compact', resource.resourceName)
    }
  })

  test('each alarm comes with its effective state (what the processor wrote, without its memory) and who wrote it', async () => {
    for (const name of suite) {
      const put = await call('PUT', `/alarms/${name}`, { labels: { suite: 'list', team: teams[name] ?? '' } })
      assert.equal(put.status, 201)
    }
    const since = 1_763_000_000_000
    for (const [name, state] of Object.entries(states)) {
      const effective: Effective = {
        name,
        state,
        active: state === 'active',
        effectivelyActive: state !== 'normal',
        severity: 'MEDIUM',
        overrides: state === 'latched' ? ['latched'] : [],
        since,
        memory: { events: 1, reminders: 0 },
      }
      await writeAsProcessor(topics.effective, name, effective)
    }
    await eventually('the api read every effective state', async () => {
      const page = await call('GET', '/alarms?label=suite=list&state=active,normal,latched')
      return page.body.alarms?.length === 4 ? true : undefined
    })
    const all = await call('GET', '/alarms?label=suite=list', undefined, sender)
    assert.equal(all.status, 200)
    assert.deepEqual(names(all.body), suite)
    assert.equal(all.body.nextCursor, null)
    const [a] = all.body.alarms
    assert.deepEqual(a.effective, {
      name: 'list-a',
      state: 'active',
      active: true,
      effectivelyActive: true,
      severity: 'MEDIUM',
      overrides: [],
      since,
    })
    assert.deepEqual(a.effectiveAudit, { user: 'alarms', source: 'alarms', host: 'processor-1' })
    const e = all.body.alarms.at(-1)
    assert.deepEqual([e.name, e.effective, e.effectiveAudit], ['list-e', null, null])
  })

  test('state and label filters, alone and together', async () => {
    assert.deepEqual(names((await call('GET', '/alarms?label=suite=list&state=active')).body), [
      'list-a',
      'list-c',
    ])
    assert.deepEqual(names((await call('GET', '/alarms?label=suite=list&state=active,latched')).body), [
      'list-a',
      'list-c',
      'list-d',
    ])
    assert.deepEqual(names((await call('GET', '/alarms?label=suite=list&label=team=storage')).body), [
      'list-a',
      'list-b',
    ])
    assert.deepEqual(
      names((await call('GET', '/alarms?label=suite=list&label=team=network&state=active')).body),
      ['list-c'],
    )
    assert.deepEqual(names((await call('GET', '/alarms?label=suite=list&state=disabled')).body), [])
  })

  test('pages of `limit` by name with a cursor, filters applied before the page is cut', async () => {
    const seen: string[][] = []
    let cursor: string | null = null
    do {
      const query: string = `/alarms?label=suite=list&limit=2${cursor ? `&cursor=${cursor}` : ''}`
      const page = await call('GET', query)
      assert.equal(page.status, 200)
      seen.push(names(page.body))
      cursor = page.body.nextCursor
    } while (cursor && seen.length < 10)
    assert.deepEqual(seen, [['list-a', 'list-b'], ['list-c', 'list-d'], ['list-e']])

    const first = await call('GET', '/alarms?label=suite=list&state=active&limit=1')
    assert.deepEqual(names(first.body), ['list-a'])
    const second = await call(
      'GET',
      `/alarms?label=suite=list&state=active&limit=1&cursor=${first.body.nextCursor}`,
    )
    assert.deepEqual(names(second.body), ['list-c'])
    assert.equal(second.body.nextCursor, null, 'no cursor when nothing more matches')
  })

  test('a bad state, label, limit or cursor is a 400 naming it', async () => {
    const state = await call('GET', '/alarms?state=active,firing')
    assert.equal(state.status, 400)
    assert.match(fieldsOf(state.body).state ?? '', /unknown state "firing"/)
    assert.deepEqual(fieldsOf((await call('GET', '/alarms?label=team')).body), {
      label: '"team" must be key=value',
    })
    assert.equal(fieldsOf((await call('GET', '/alarms?limit=501')).body).limit !== undefined, true)
    assert.deepEqual(Object.keys(fieldsOf((await call('GET', '/alarms?cursor=%25%25')).body)), ['cursor'])
    assert.deepEqual(Object.keys(fieldsOf((await call('GET', '/alarms?colour=red')).body)), ['(query)'])
  })
})
