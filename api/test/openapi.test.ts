import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { parseNotificationRequest } from '@herald/shared/notification'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { buildOpenApi } from '../src/openapi.ts'

type Doc = ReturnType<typeof buildOpenApi>
const doc: Doc = JSON.parse(JSON.stringify(buildOpenApi({ maxBatch: 3 })))
const context = {
  defaults: { email: 'oncall@example.com', slack: 'default' },
  slackDestinations: ['default', 'ops'],
}

/** A validator for a schema of the document, with its #/components/... references resolved. */
function validatorOf(schema: object) {
  const ajv = new Ajv2020({ strict: false, allErrors: true })
  return ajv.compile({ ...schema, components: doc.components })
}

const single = validatorOf(
  doc.paths['/api/v1/notification'].post.requestBody.content['application/json'].schema,
)
const batch = validatorOf(
  doc.paths['/api/v1/notifications'].post.requestBody.content['application/json'].schema,
)

const valid: unknown[] = [
  { channel: 'email', message: 'Charm!' },
  { channel: 'email', to: 'a@example.com', subject: 'Hi', message: 'x' },
  { channel: ' EMAIL ', message: 'case and blanks around the channel' },
  { channel: 'sms', to: '+14155550100', message: 'x' },
  { channel: 'Sms', to: '+14155550100', message: 'x'.repeat(1600) },
  { channel: 'slack', message: 'x' },
  { channel: 'SLACK', to: 'ops', message: 'x' },
]

// Refused by the api for reasons the document can state as well.
const invalid: unknown[] = [
  { channel: 'fax', message: 'x' },
  { message: 'no channel' },
  { channel: 'email' },
  { channel: 'email', message: '' },
  { channel: 'email', message: ' \n\t ' },
  { channel: 'email', message: 42 },
  { channel: 'email', message: 'x', priority: 'high' },
  { channel: 'sms', to: '555-0100', message: 'x' },
  { channel: 'sms', to: '+14155550100', message: 'x'.repeat(1601) },
  { channel: 'sms', to: '+14155550100', subject: 'sms has no subject', message: 'x' },
  { channel: 'emailx', message: 'x' },
  [{ channel: 'email', message: 'x' }],
  'a string',
]

describe('the published OpenAPI document', () => {
  test('is OpenAPI 3.1 and documents every route behind the API key', () => {
    assert.equal(doc.openapi, '3.1.0')
    assert.deepEqual(Object.keys(doc.paths).sort(), [
      '/api/v1/alarm-events',
      '/api/v1/alarms',
      '/api/v1/alarms/{name}',
      '/api/v1/alarms/{name}/ack',
      '/api/v1/alarms/{name}/activate',
      '/api/v1/alarms/{name}/clear',
      '/api/v1/alarms/{name}/disable',
      '/api/v1/alarms/{name}/enable',
      '/api/v1/alarms/{name}/shelve',
      '/api/v1/alarms/{name}/unshelve',
      '/api/v1/channels',
      '/api/v1/dead-letters/{channel}',
      '/api/v1/dead-letters/{channel}/replay',
      '/api/v1/notification',
      '/api/v1/notification/{id}',
      '/api/v1/notifications',
      '/api/v1/recipients',
      '/api/v1/recipients/{name}',
      '/api/v1/routes',
      '/api/v1/routes/{name}',
      '/api/v1/rules',
      '/api/v1/rules/{name}',
      '/api/v1/templates',
      '/api/v1/templates/{name}',
    ])
  })

  test('dead-letter routes say they are for admin keys and come in pages of 50, at most 500', () => {
    const list = doc.paths['/api/v1/dead-letters/{channel}'].get
    const replay = doc.paths['/api/v1/dead-letters/{channel}/replay'].post
    for (const operation of [list, replay]) assert.ok(operation.responses['403'], '403 documented')
    assert.match(doc.components.securitySchemes.apiKey.description, /name:key:admin/)
    const limit = list.parameters.find((p) => p.name === 'limit')?.schema as Record<string, unknown>
    assert.deepEqual([limit.default, limit.minimum, limit.maximum], [50, 1, 500])
    assert.ok(list.parameters.some((p) => p.name === 'cursor'))
    const request = validatorOf(replay.requestBody.content['application/json'].schema)
    assert.ok(request({ class: 'permanent', limit: 500, cursor: 'MDow' }), JSON.stringify(request.errors))
    assert.ok(request({ at: ['0:12'] }), JSON.stringify(request.errors))
    assert.equal(request({ all: true, limit: 501 }), false, 'more than 500 per page')
    assert.equal(request({ all: true, extra: 1 }), false, 'unknown fields')
  })

  test('every body the api accepts matches exactly one request schema', () => {
    for (const body of valid) {
      assert.equal(
        parseNotificationRequest(body, context).ok,
        true,
        `the api accepts ${JSON.stringify(body)}`,
      )
      assert.ok(single(body), `${JSON.stringify(body)}: ${JSON.stringify(single.errors)}`)
    }
  })

  test('bodies the api refuses for a documented reason are refused by the document too', () => {
    for (const body of invalid) {
      assert.equal(
        parseNotificationRequest(body, context).ok,
        false,
        `the api refuses ${JSON.stringify(body)}`,
      )
      assert.equal(single(body), false, `the document refuses ${JSON.stringify(body)}`)
    }
  })

  test("a notification's status documents its history of status changes", () => {
    const status = validatorOf(
      doc.paths['/api/v1/notification/{id}'].get.responses['200'].content['application/json'].schema,
    )
    const view = {
      id: 'n1',
      status: 'delivered',
      channel: 'sms',
      attempts: 2,
      createdAt: '2026-12-01T09:00:00.000Z',
      updatedAt: '2026-12-01T09:00:02.000Z',
      history: [
        { status: 'queued', at: '2026-12-01T09:00:00.000Z', attempts: 0, channel: 'sms' },
        { status: 'retrying', at: '2026-12-01T09:00:01.000Z', attempts: 1, lastError: 'Twilio 503' },
        { status: 'delivered', at: '2026-12-01T09:00:02.000Z', attempts: 2, channel: 'sms' },
      ],
    }
    assert.ok(status(view), JSON.stringify(status.errors))
    assert.ok(status({ ...view, history: [] }), JSON.stringify(status.errors))
    const { history: _, ...without } = view
    assert.equal(status(without), false, 'history is always there')
    assert.equal(status({ ...view, history: [{ status: 'sent', at: 'now' }] }), false, 'an unknown status')
    const properties = doc.components.schemas.Status.properties as Record<string, { description?: string }>
    assert.ok(properties.history?.description, 'history is described')
  })

  test('a batch is an array of up to maxBatch notifications', () => {
    assert.ok(batch(valid.slice(0, 3)), JSON.stringify(batch.errors))
    assert.equal(batch(valid.slice(0, 4)), false, 'more than maxBatch')
    assert.equal(batch([{ channel: 'fax', message: 'x' }]), false)
  })
})
