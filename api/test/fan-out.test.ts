import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { Recipient } from '@herald/shared/config-topics/schemas'
import { parseNotificationRequest, type RecipientInput } from '@herald/shared/notification'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { childIdOf, planChildren } from '../src/fan-out.ts'
import { fingerprint } from '../src/idempotency.ts'
import { buildOpenApi } from '../src/openapi.ts'

const ada: Recipient = {
  id: 'ada',
  name: 'Ada',
  email: 'ada@example.com',
  phone: '+14155550100',
  slack: 'ops',
  channels: ['slack', 'email', 'sms'],
}
const request = (extra: Partial<RecipientInput> = {}): RecipientInput => ({
  recipient: 'ada',
  message: 'db1 is at 97%',
  ...extra,
})

describe('planning the children of a notification for a recipient', () => {
  test('every enabled channel gets one child, in the order email, sms, slack, addressed from the directory', () => {
    const plan = planChildren(request({ subject: 'Disk full' }), ada, ['ops'])
    assert.ok(plan.ok)
    assert.deepEqual(plan.children, [
      { channel: 'email', to: 'ada@example.com', subject: 'Disk full', message: 'db1 is at 97%' },
      { channel: 'sms', to: '+14155550100', message: 'Disk full\ndb1 is at 97%' },
      { channel: 'slack', to: 'ops', message: 'Disk full\ndb1 is at 97%' },
    ])
  })

  test('without a subject every channel sends the message as it is', () => {
    const plan = planChildren(request({ channel: 'sms' }), ada, ['ops'])
    assert.ok(plan.ok)
    assert.deepEqual(plan.children, [{ channel: 'sms', to: '+14155550100', message: 'db1 is at 97%' }])
  })

  test('a Slack destination this api does not know, and a text too long for SMS, are reasons given together', () => {
    const plan = planChildren(request({ message: 'x'.repeat(1600), subject: 'S' }), ada, ['default'])
    assert.equal(plan.ok, false)
    assert.ok(!plan.ok)
    assert.deepEqual(
      plan.issues.map((i) => i.field),
      ['message', 'recipient'],
    )
    assert.match(plan.issues[0]?.reason ?? '', /is 1602 characters with the subject line; sms allows 1600/)
    assert.match(plan.issues[1]?.reason ?? '', /Slack destination "ops", which this api does not know/)
  })

  test('a child id is the parent id and the channel', () => {
    assert.equal(childIdOf('0190a-b', 'sms'), '0190a-b.sms')
  })

  test('a recipient request and a plain one never share an idempotency fingerprint', () => {
    const viaRecipient = fingerprint({ recipient: 'ada', channel: 'email', message: 'm' })
    assert.notEqual(viaRecipient, fingerprint({ channel: 'email', to: 'ada', message: 'm' }))
    assert.notEqual(viaRecipient, fingerprint({ recipient: 'ada', message: 'm' }), 'the channel counts')
  })
})

describe('the published document and recipient bodies', () => {
  const doc = JSON.parse(JSON.stringify(buildOpenApi({ maxBatch: 3 })))
  const single = new Ajv2020({ strict: false, allErrors: true }).compile({
    ...doc.paths['/api/v1/notification'].post.requestBody.content['application/json'].schema,
    components: doc.components,
  })
  const context = { defaults: {}, slackDestinations: ['ops'] }

  test('bodies naming a recipient are accepted by the api and match exactly one schema', () => {
    for (const body of [
      { recipient: 'ada', message: 'x' },
      { recipient: 'ada', channel: ' SMS ', message: 'x' },
      { recipient: 'ops.team@example', channel: 'slack', subject: 'S', message: 'x' },
    ]) {
      assert.equal(parseNotificationRequest(body, context).ok, true, JSON.stringify(body))
      assert.ok(single(body), `${JSON.stringify(body)}: ${JSON.stringify(single.errors)}`)
    }
  })

  test('bodies refused by the api are refused by the document too', () => {
    for (const body of [
      { recipient: 'ada', to: 'a@example.com', message: 'x' },
      { recipient: 'ada', channel: 'webhook', message: 'x' },
      { recipient: 'ada' },
      { recipient: '', message: 'x' },
      { recipient: 'ada', message: 'x', subject: 'two\nlines' },
      { recipient: 'ada', message: 'x', priority: 'high' },
    ]) {
      assert.equal(parseNotificationRequest(body, context).ok, false, JSON.stringify(body))
      if (!('subject' in body))
        assert.equal(single(body), false, `the document refuses ${JSON.stringify(body)}`)
    }
  })
})
