import assert from 'node:assert/strict'
import { test } from 'node:test'
import { recipientSchema, routeSchema } from '@herald/shared/config-topics/schemas'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { buildOpenApi } from '../src/openapi.ts'

const doc = JSON.parse(JSON.stringify(buildOpenApi({ maxBatch: 3 }))) as {
  components: Record<string, unknown>
  paths: Record<
    string,
    Record<
      string,
      {
        requestBody?: { content: Record<string, { schema: object }> }
        responses: Record<string, unknown>
        parameters?: Array<{ name: string; schema: Record<string, unknown> }>
      }
    >
  >
}

function validatorOf(schema: object) {
  return new Ajv2020({ strict: false, allErrors: true }).compile({ ...schema, components: doc.components })
}

test('recipient, template and route writes are documented as admin-only, with 201 for a new one', () => {
  for (const kind of ['recipients', 'templates', 'routes']) {
    const item = doc.paths[`/api/v1/${kind}/{name}`]
    for (const method of ['put', 'delete'])
      assert.ok(item?.[method]?.responses['403'], `${kind} ${method} 403`)
    assert.ok(item?.put?.responses['201'] && item.put.responses['200'])
    const list = doc.paths[`/api/v1/${kind}`]?.get
    const limit = list?.parameters?.find((p) => p.name === 'limit')?.schema
    assert.deepEqual([limit?.default, limit?.minimum, limit?.maximum], [50, 1, 500])
  }
})

test('the documented recipient and route schemas accept what the api accepts', () => {
  const recipient = {
    id: 'ada',
    name: 'Ada',
    email: 'ada@example.com',
    phone: '+14155550100',
    channels: ['email', 'sms'],
    timezone: 'Europe/London',
    quietHours: { start: '22:00', end: '07:00' },
  }
  const route = {
    name: 'r',
    match: { alarmDefinitionId: 'D', states: ['ALARM'], severity: ['HIGH'] },
    recipients: ['ada'],
    template: { email: 'long-mail' },
    periodSeconds: 300,
  }
  for (const [kind, value, schema] of [
    ['recipients', recipient, recipientSchema],
    ['routes', route, routeSchema],
  ] as const) {
    assert.ok(schema.safeParse(value).success)
    const body = doc.paths[`/api/v1/${kind}/{name}`]?.put?.requestBody?.content['application/json']?.schema
    assert.ok(body)
    const validate = validatorOf(body)
    assert.ok(validate(value), JSON.stringify(validate.errors))
    assert.equal(validate({ ...value, unknown: 1 }), false, `${kind}: unknown fields refused`)
  }
})
