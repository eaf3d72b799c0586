import assert from 'node:assert/strict'
import { after, before, beforeEach, test } from 'node:test'
import twilio from 'twilio'
import type { StandIn } from '../../dev/standins/common.ts'
import { startTwilioStandIn } from '../../dev/standins/twilio.ts'
import { garbage, talkRaw } from './raw-socket.ts'

// How the twilio SDK (v6) shows an error answer: it throws a RestException (twilio.RestException) with
// `status` (HTTP status), `code` (Twilio error code), `message` and `moreInfo` from the JSON body, and no
// headers. Retry-After is only in the HTTP response: the RequestClient keeps the last one as
// `client.httpClient.lastResponse` ({ statusCode, body, headers }, headers lower-cased by axios) - fine
// for one request at a time, raced by concurrent ones; a wrapped httpClient (below, and in the
// distributor's SMS channel) keeps the response of each call. Expected statuses and codes are Twilio's
// documented ones (https://www.twilio.com/docs/errors/<code>).
interface TwilioError {
  status?: number
  code?: number
  message?: string
  moreInfo?: string
}

let standIn: StandIn
const sid = 'AC0123456789abcdef0123456789abcdef'
const token = 'secret'
const keySid = 'SK0123456789abcdef0123456789abcdef'
const keySecret = 'key-secret'
const to = '+15551234567'
const from = '+15557654321'

function client(password = token) {
  const c = twilio(sid, password, { autoRetry: false })
  c.api.baseUrl = standIn.url
  return c
}

/** A client whose every call also hands back the raw response (status and headers) it got. */
function clientWithResponses() {
  const inner = new twilio.RequestClient()
  const responses: Array<{ statusCode: number; headers: Record<string, string> }> = []
  const httpClient = Object.create(inner) as typeof inner
  httpClient.request = async (opts) => {
    const response = await inner.request(opts)
    responses.push(response as unknown as { statusCode: number; headers: Record<string, string> })
    return response
  }
  const c = twilio(sid, token, { httpClient, autoRetry: false })
  c.api.baseUrl = standIn.url
  return { client: c, responses }
}

const postForm = (form: Record<string, string>, auth = `${sid}:${token}`) =>
  fetch(`${standIn.url}/2010-04-01/Accounts/${sid}/Messages.json`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(auth).toString('base64')}` },
    body: new URLSearchParams(form),
  })

before(async () => {
  delete process.env.TWILIO_EDGE
  delete process.env.TWILIO_REGION
  standIn = await startTwilioStandIn({
    port: 0,
    accountSid: sid,
    authToken: token,
    apiKeySid: keySid,
    apiKeySecret: keySecret,
    quiet: true,
  })
})
beforeEach(() => {
  standIn.setFaults({})
})
after(async () => {
  await standIn.close()
})

test('the twilio SDK sends a message to the stand-in and gets a queued message back', async () => {
  const message = await client().messages.create({ to, from, body: 'hello' })
  assert.match(message.sid, /^SM[0-9a-f]{32}$/)
  assert.equal(message.status, 'queued')
  assert.equal(message.to, to)
  assert.equal(message.from, from)
  assert.equal(message.body, 'hello')
  assert.equal(message.accountSid, sid)
  assert.equal(message.direction, 'outbound-api')
  assert.equal(message.apiVersion, '2010-04-01')
  assert.equal(message.numSegments, '1')
  assert.equal(message.uri, `/2010-04-01/Accounts/${sid}/Messages/${message.sid}.json`)
  assert.ok(message.dateCreated instanceof Date && !Number.isNaN(message.dateCreated.getTime()))
  const got = standIn.messages().find((m) => m.messageId === message.sid)
  assert.equal(got?.provider, 'twilio')
  assert.equal(got?.text, 'hello')
  assert.equal(got?.from, from)
  assert.equal(got?.to, to)
})

test('segments are counted as Twilio does: 160 GSM-7 characters, 153 when split, 70 in UCS-2', async () => {
  const segments = async (body: string) => (await client().messages.create({ to, from, body })).numSegments
  assert.equal(await segments('a'.repeat(160)), '1')
  assert.equal(await segments('a'.repeat(161)), '2')
  assert.equal(await segments('é'.repeat(160)), '1', 'é is in the GSM-7 alphabet')
  assert.equal(await segments('✓'.repeat(70)), '1')
  assert.equal(await segments('✓'.repeat(71)), '2')
})

test('an API key with the account SID authenticates, and a Messaging Service sends as accepted', async () => {
  const c = twilio(keySid, keySecret, { accountSid: sid, autoRetry: false })
  c.api.baseUrl = standIn.url
  const message = await c.messages.create({
    to,
    messagingServiceSid: 'MG0123456789abcdef0123456789abcdef',
    body: 'x',
  })
  assert.equal(message.status, 'accepted')
  assert.equal(message.messagingServiceSid, 'MG0123456789abcdef0123456789abcdef')
})

test('an invalid number is RestException 400 with code 21211', async () => {
  await assert.rejects(client().messages.create({ to: '12345', from, body: 'x' }), (e: TwilioError) => {
    assert.ok(e instanceof twilio.RestException)
    assert.equal(e.status, 400)
    assert.equal(e.code, 21211)
    assert.equal(e.moreInfo, 'https://www.twilio.com/docs/errors/21211')
    return true
  })
})

test('a missing body is 400 with code 21602, a missing To 400 with code 21604', async () => {
  await assert.rejects(
    client().messages.create({ to, from }),
    (e: TwilioError) => e.status === 400 && e.code === 21602,
  )
  // The SDK refuses to send without `to`, so the request is made by hand.
  const response = await postForm({ From: from, Body: 'x' })
  assert.equal(response.status, 400)
  assert.deepEqual(await response.json(), {
    code: 21604,
    message: "A 'To' phone number is required.",
    more_info: 'https://www.twilio.com/docs/errors/21604',
    status: 400,
  })
})

test('a permanent recipient is 400 with code 21211, or the code its entry names (21610)', async () => {
  standIn.setFaults({ permanentRecipients: ['+15550001111', { recipient: '+15550002222', code: 21610 }] })
  await assert.rejects(
    client().messages.create({ to: '+15550001111', from, body: 'x' }),
    (e: TwilioError) => e.status === 400 && e.code === 21211,
  )
  await assert.rejects(
    client().messages.create({ to: '+15550002222', from, body: 'x' }),
    (e: TwilioError) => e.status === 400 && e.code === 21610,
  )
  assert.equal((await client().messages.create({ to, from, body: 'others pass' })).status, 'queued')
})

test('rate limiting is 429 with code 20429, and the SDK response carries Retry-After', async () => {
  standIn.setFaults({ failNext: 2, status: 429, retryAfter: 7 })
  const { client: c, responses } = clientWithResponses()
  await assert.rejects(
    c.messages.create({ to, from, body: 'x' }),
    (e: TwilioError) => e.status === 429 && e.code === 20429 && e.message === 'Too Many Requests',
  )
  assert.equal(responses.at(-1)?.statusCode, 429)
  assert.equal(responses.at(-1)?.headers['retry-after'], '7')
  // The same header through the client's lastResponse.
  const plain = client()
  await assert.rejects(plain.messages.create({ to, from, body: 'x' }), (e: TwilioError) => e.status === 429)
  const last = plain.httpClient.lastResponse as unknown as {
    statusCode: number
    headers: Record<string, string>
  }
  assert.equal(last.statusCode, 429)
  assert.equal(last.headers['retry-after'], '7')
  assert.equal((await c.messages.create({ to, from, body: 'after' })).status, 'queued')
})

test('an outage is 503 with code 20503 and a server error 500 with code 20500', async () => {
  standIn.setFaults({ failNext: 1, status: 503, retryAfter: 2 })
  await assert.rejects(
    client().messages.create({ to, from, body: 'x' }),
    (e: TwilioError) => e.status === 503 && e.code === 20503 && e.message === 'Service Unavailable',
  )
  standIn.setFaults({ failNext: 1, status: 500 })
  await assert.rejects(
    client().messages.create({ to, from, body: 'x' }),
    (e: TwilioError) => e.status === 500 && e.code === 20500,
  )
})

test('wrong credentials and the authFail fault are 401 with code 20003', async () => {
  await assert.rejects(
    client('wrong').messages.create({ to, from, body: 'x' }),
    (e: TwilioError) => e.status === 401 && e.code === 20003,
  )
  standIn.setFaults({ authFail: true })
  await assert.rejects(
    client().messages.create({ to, from, body: 'x' }),
    (e: TwilioError) => e.status === 401 && e.code === 20003,
  )
  const raw = await postForm({ To: to, From: from, Body: 'x' })
  assert.equal(raw.status, 401)
  assert.match(raw.headers.get('www-authenticate') ?? '', /^Basic /)
})

test('received messages and faults are inspected and set over HTTP', async () => {
  standIn.clear()
  await client().messages.create({ to, from, body: 'listed' })
  const listed = (await (await fetch(`${standIn.url}/messages`)).json()) as Array<{
    to: string
    text: string
  }>
  assert.deepEqual(
    listed.map((m) => [m.to, m.text]),
    [[to, 'listed']],
  )
  const put = await fetch(`${standIn.url}/faults`, {
    method: 'PUT',
    body: JSON.stringify({ failNext: 1, status: 503 }),
  })
  assert.equal(put.status, 200)
  await assert.rejects(
    client().messages.create({ to, from, body: 'x' }),
    (e: TwilioError) => e.status === 503,
  )
  assert.equal(
    (await fetch(`${standIn.url}/faults`, { method: 'PUT', body: '{"status":"soon"}' })).status,
    400,
  )
  await fetch(`${standIn.url}/messages`, { method: 'DELETE' })
  assert.deepEqual(standIn.messages(), [])
})

test('garbage, malformed forms and odd paths get error answers and the stand-in stays up', async () => {
  const raw = await talkRaw(standIn.port, [garbage(500), '\r\n\r\n'])
  assert.match(raw, /^HTTP\/1\.1 400/)
  const form = await fetch(`${standIn.url}/2010-04-01/Accounts/${sid}/Messages.json`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${sid}:${token}`).toString('base64')}` },
    body: '%%%&&&=%zz',
  })
  assert.equal(form.status, 400)
  assert.equal(((await form.json()) as TwilioError).code, 21604)
  assert.equal(
    (await fetch(`${standIn.url}/2010-04-01/Accounts/%E0%A4%A/Messages.json`, { method: 'POST' })).status,
    404,
  )
  assert.equal((await fetch(`${standIn.url}/nope`)).status, 404)
  assert.equal((await fetch(`${standIn.url}/2010-04-01/Accounts/${sid}/Messages.json`)).status, 405)
  const huge = await postForm({ To: to, From: from, Body: 'x'.repeat(2 * 1024 * 1024) })
  assert.equal(huge.status, 413)
  assert.equal((await postForm({ To: to, From: from, Body: 'y' }, 'no-colon')).status, 401)
  const ok = await client().messages.create({ to, from, body: 'still up' })
  assert.equal(ok.status, 'queued')
})
