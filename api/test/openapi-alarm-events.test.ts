import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { parseAlarmEvent } from '@herald/shared/alarm-events'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { monascaEvent } from '../../test/support/alarm-events.ts'
import { buildOpenApi } from '../src/openapi.ts'

const doc = JSON.parse(JSON.stringify(buildOpenApi({ maxBatch: 3 })))
const operation = doc.paths['/api/v1/alarm-events'].post
const ajv = new Ajv2020({ strict: false, allErrors: true })
const request = ajv.compile({
  ...operation.requestBody.content['application/json'].schema,
  components: doc.components,
})

const valid: unknown[] = [
  monascaEvent(),
  { 'alarm-transitioned': monascaEvent() },
  { alarmName: 'queue depth', newState: 'OK', timestamp: 1_763_000_000_000, kind: 'ok', labels: { a: 'b' } },
]

const invalid: unknown[] = [
  monascaEvent({ newState: 'FIRING' }),
  monascaEvent({ timestamp: 1_763_000_000 }),
  monascaEvent({ alarmName: undefined }),
  monascaEvent({ labels: { team: 1 } }),
  { 'alarm-transitioned': monascaEvent(), extra: true },
  'an event',
]

describe('the OpenAPI document of POST /api/v1/alarm-events', () => {
  test('accepts what the api accepts: one event, the wrapped form, or an array of up to maxBatch', () => {
    for (const body of valid) {
      assert.ok(parseAlarmEvent(body).ok, `the api accepts ${JSON.stringify(body)}`)
      assert.ok(request(body), `${JSON.stringify(body)}: ${JSON.stringify(request.errors)}`)
    }
    assert.ok(request(valid), JSON.stringify(request.errors))
    assert.equal(request([...valid, valid[0]]), false, 'more than maxBatch')
    assert.equal(request([]), false, 'an empty batch')
  })

  test('refuses what the api refuses for a reason the document can state', () => {
    for (const body of invalid) {
      assert.equal(parseAlarmEvent(body).ok, false, `the api refuses ${JSON.stringify(body)}`)
      assert.equal(request(body), false, `the document refuses ${JSON.stringify(body)}`)
    }
  })

  test('documents the 202 answers, 400 and the 503 with Retry-After', () => {
    assert.deepEqual(Object.keys(operation.responses).sort(), [
      '202',
      '400',
      '401',
      '413',
      '415',
      '503',
      'default',
    ])
    assert.ok(operation.responses['503'].headers['Retry-After'])
  })
})
