import assert from 'node:assert/strict'
import { test } from 'node:test'
import { activationSchema, registrationSchema } from '@herald/shared/alarms/schemas'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { buildOpenApi } from '../src/openapi.ts'
import { alarmActions, alarmRouteOf, alarmRouteTable, shelveRequestSchema } from '../src/routes/alarms.ts'

interface Operation {
  requestBody?: { required?: boolean; content: Record<string, { schema: object }> }
  responses: Record<string, unknown>
  parameters?: Array<{ name: string; schema: Record<string, unknown> }>
}
const doc = JSON.parse(JSON.stringify(buildOpenApi({ maxBatch: 3 }))) as {
  components: Record<string, unknown>
  paths: Record<string, Record<string, Operation>>
}

function validatorOf(schema: object) {
  return new Ajv2020({ strict: false, allErrors: true }).compile({ ...schema, components: doc.components })
}

test('every alarm route of the route table is documented with its methods, and only those', () => {
  const documented = Object.entries(doc.paths)
    .filter(([path]) => path.startsWith('/api/v1/alarms'))
    .map(([path, item]) => [
      path.replace('{name}', ':name'),
      Object.keys(item)
        .map((m) => m.toUpperCase())
        .sort(),
    ])
  assert.deepEqual(
    documented.sort(),
    Object.entries(alarmRouteTable)
      .map(([path, methods]) => [path, [...methods].sort()])
      .sort(),
  )
})

test('request paths map to their route templates (metric labels, 405s) and nothing else does', () => {
  assert.equal(alarmRouteOf('/api/v1/alarms'), '/api/v1/alarms')
  assert.equal(alarmRouteOf('/api/v1/alarms/disk-full'), '/api/v1/alarms/:name')
  for (const action of Object.keys(alarmActions)) {
    assert.equal(alarmRouteOf(`/api/v1/alarms/disk/${action}`), `/api/v1/alarms/:name/${action}`)
  }
  assert.equal(alarmRouteOf('/api/v1/alarms/disk/snooze'), undefined)
  assert.equal(alarmRouteOf('/api/v1/alarms/ack'), '/api/v1/alarms/:name', 'an alarm may be called ack')
  assert.equal(alarmRouteOf('/api/v1/alarm-events'), undefined)
})

test('writes and actions are documented as admin-only; actions answer 202 with the record', () => {
  const item = doc.paths['/api/v1/alarms/{name}']
  for (const method of ['put', 'delete']) assert.ok(item?.[method]?.responses['403'], method)
  assert.ok(item?.put?.responses['201'] && item.put.responses['200'])
  for (const action of Object.keys(alarmActions)) {
    const post = doc.paths[`/api/v1/alarms/{name}/${action}`]?.post
    assert.ok(post?.responses['202'] && post.responses['403'] && post.responses['404'], action)
  }
  for (const action of ['clear', 'ack', 'unshelve', 'enable']) {
    assert.ok(doc.paths[`/api/v1/alarms/{name}/${action}`]?.post?.responses['409'], `${action}: 409`)
  }
  const list = doc.paths['/api/v1/alarms']?.get
  const limit = list?.parameters?.find((p) => p.name === 'limit')?.schema
  assert.deepEqual([limit?.default, limit?.minimum, limit?.maximum], [50, 1, 500])
  assert.deepEqual(
    list?.parameters?.map((p) => p.name),
    ['state', 'label', 'limit', 'cursor'],
  )
})

test('the documented request bodies accept what the api accepts and refuse unknown fields', () => {
  const bodyOf = (path: string, method: string) => {
    const schema = doc.paths[path]?.[method]?.requestBody?.content['application/json']?.schema
    assert.ok(schema, `${method} ${path}`)
    return validatorOf(schema)
  }
  const cases: Array<
    [string, string, Record<string, unknown>, { safeParse: (v: unknown) => { success: boolean } }]
  > = [
    [
      '/api/v1/alarms/{name}',
      'put',
      {
        name: 'disk',
        class: 'storage',
        severity: 'HIGH',
        latching: true,
        maxShelveSeconds: 3600,
        onDelaySeconds: 30,
        maskedBy: 'rack-power',
        repeatSeconds: 600,
        docUrl: 'https://runbooks.example.com/disk',
        labels: { team: 'storage' },
      },
      registrationSchema,
    ],
    [
      '/api/v1/alarms/{name}/activate',
      'post',
      { severity: 'CRITICAL', message: 'disk 97%', value: 97, source: 'rule-7' },
      activationSchema.omit({ at: true }),
    ],
    ['/api/v1/alarms/{name}/shelve', 'post', { for: 1800, reason: 'maintenance' }, shelveRequestSchema],
    [
      '/api/v1/alarms/{name}/shelve',
      'post',
      { until: '2030-01-01T00:00:00Z', oneshot: true, reason: 'maintenance' },
      shelveRequestSchema,
    ],
  ]
  for (const [path, method, value, schema] of cases) {
    assert.ok(schema.safeParse(value).success, `the api accepts ${JSON.stringify(value)}`)
    const validate = bodyOf(path, method)
    assert.ok(validate(value), JSON.stringify(validate.errors))
    assert.equal(validate({ ...value, unknown: 1 }), false, `${path}: unknown fields refused`)
  }
  const shelve = bodyOf('/api/v1/alarms/{name}/shelve', 'post')
  assert.equal(shelve({ for: 60 }), false, 'a shelve needs a reason')
  assert.equal(shelve({ until: 1_700_000_000, reason: 'seconds, not ms' }), false)
  const ack = bodyOf('/api/v1/alarms/{name}/ack', 'post')
  assert.ok(ack({}))
  assert.equal(ack({ now: true }), false)
})
