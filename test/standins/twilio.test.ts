import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import twilio from 'twilio'
import type { StandIn } from '../../dev/standins/common.ts'
import { startTwilioStandIn } from '../../dev/standins/twilio.ts'

let standIn: StandIn
const sid = 'AC0123456789abcdef0123456789abcdef'
const token = 'secret'

function client(password = token) {
  const c = twilio(sid, password, { autoRetry: false })
  c.api.baseUrl = standIn.url
  return c
}

before(async () => {
  delete process.env.TWILIO_EDGE
  delete process.env.TWILIO_REGION
  standIn = await startTwilioStandIn({ port: 0, accountSid: sid, authToken: token, quiet: true })
})
after(async () => {
  await standIn.close()
})

// Expected statuses and codes are Twilio's documented ones (https://www.twilio.com/docs/errors/<code>).
test('the twilio SDK sends a message to the stand-in and gets a queued message back', async () => {
  const message = await client().messages.create({ to: '+15551234567', from: '+15557654321', body: 'hello' })
  assert.match(message.sid, /^SM[0-9a-f]{32}$/)
  assert.equal(message.status, 'queued')
  assert.equal(message.to, '+15551234567')
  const got = standIn.messages().find((m) => m.messageId === message.sid)
  assert.equal(got?.text, 'hello')
  assert.equal(got?.from, '+15557654321')
})

test('an invalid number is RestException 400 with code 21211', async () => {
  await assert.rejects(
    client().messages.create({ to: '12345', from: '+15557654321', body: 'x' }),
    (e: { status?: number; code?: number }) => {
      return e.status === 400 && e.code === 21211
    },
  )
})

test('an unsubscribed recipient is 400 with code 21610', async () => {
  standIn.setFaults({ permanentRecipients: ['+15550001111'], permanentCode: 21610 })
  await assert.rejects(
    client().messages.create({ to: '+15550001111', from: '+15557654321', body: 'x' }),
    (e: { status?: number; code?: number }) => e.status === 400 && e.code === 21610,
  )
  standIn.setFaults({})
})

test('rate limiting is 429 with code 20429 and a Retry-After header', async () => {
  standIn.setFaults({ failNext: 2, status: 429, retryAfter: 7 })
  await assert.rejects(
    client().messages.create({ to: '+15551234567', from: '+15557654321', body: 'x' }),
    (e: { status?: number; code?: number }) => e.status === 429 && e.code === 20429,
  )
  // The SDK's RestException has no headers; the raw answer shows the header the distributor reads.
  const raw = await fetch(`${standIn.url}/2010-04-01/Accounts/${sid}/Messages.json`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${sid}:${token}`).toString('base64')}` },
    body: new URLSearchParams({ To: '+15551234567', From: '+15557654321', Body: 'x' }),
  })
  assert.equal(raw.status, 429)
  assert.equal(raw.headers.get('retry-after'), '7')
  standIn.setFaults({})
})

test('an outage is 503, and wrong credentials are 401 with code 20003', async () => {
  standIn.setFaults({ failNext: 1, status: 503 })
  await assert.rejects(
    client().messages.create({ to: '+15551234567', from: '+15557654321', body: 'x' }),
    (e: { status?: number }) => e.status === 503,
  )
  await assert.rejects(
    client('wrong').messages.create({ to: '+15551234567', from: '+15557654321', body: 'x' }),
    (e: { status?: number; code?: number }) => e.status === 401 && e.code === 20003,
  )
})

test('garbage does not take the stand-in down', async () => {
  const bad = await fetch(`${standIn.url}/2010-04-01/Accounts/${sid}/Messages.json`, {
    method: 'POST',
    body: '%%%&&&',
  })
  assert.equal(bad.status, 401)
  assert.equal((await fetch(`${standIn.url}/nope`)).status, 404)
  const ok = await client().messages.create({ to: '+15551234567', from: '+15557654321', body: 'still up' })
  assert.equal(ok.status, 'queued')
})
