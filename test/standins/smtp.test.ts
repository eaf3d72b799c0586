import assert from 'node:assert/strict'
import { after, before, beforeEach, test } from 'node:test'
import nodemailer from 'nodemailer'
import { type SmtpStandIn, startSmtpStandIn } from '../../dev/standins/smtp.ts'
import { garbage, talkRaw } from './raw-socket.ts'

// nodemailer's errors carry the SMTP reply: `responseCode` (number), `response` (the reply line), `command`
// (the command that got it), `code` (EENVELOPE for MAIL FROM/RCPT TO, EMESSAGE for the end of DATA, EAUTH
// for AUTH) and `permanent` (reply code 5xx). SMTP has no Retry-After.
interface MailError {
  responseCode?: number
  response?: string
  code?: string
  command?: string
  permanent?: boolean
}

let smtp: SmtpStandIn
const transport = (auth?: { user: string; pass: string }) =>
  nodemailer.createTransport({
    host: '127.0.0.1',
    port: smtp.port,
    secure: false,
    ignoreTLS: true,
    ...(auth ? { auth } : {}),
  })
const send = (to: string, text = 'x') => transport().sendMail({ from: 'h@example.com', to, text })

before(async () => {
  smtp = await startSmtpStandIn({ port: 0, httpPort: 0, quiet: true })
})
beforeEach(() => {
  smtp.setFaults({})
})
after(async () => {
  await smtp.close()
})

test('nodemailer delivers to the SMTP stand-in and the mail arrives intact', async () => {
  const info = await transport().sendMail({
    from: 'Herald <herald@example.com>',
    to: 'ada@example.com',
    subject: 'Deploy finished',
    text: 'All green.',
    messageId: '<n-1@herald>',
  })
  assert.deepEqual(info.accepted, ['ada@example.com'])
  const got = smtp.messages().find((m) => m.messageId === '<n-1@herald>')
  assert.ok(got)
  assert.equal(got.provider, 'smtp')
  assert.equal(got.to, 'ada@example.com')
  assert.equal(got.from, 'herald@example.com')
  assert.equal(got.subject, 'Deploy finished')
  assert.equal(got.text, 'All green.')
  assert.equal(got.heraldId, 'n-1')
  assert.ok(got.size > 'All green.'.length)
  assert.match(got.at, /^\d{4}-\d\d-\d\dT/)
})

test('non-ASCII subjects, long lines and an HTML alternative arrive decoded as text', async () => {
  const long = `Résumé ✓ ${'0123456789 '.repeat(20)}end`
  await transport().sendMail({
    from: 'h@example.com',
    to: ['ada@example.com', 'bob@example.com'],
    subject: 'Déploiement réussi ✓ — un sujet assez long pour être plié sur plusieurs lignes par nodemailer',
    text: `${long}\nligne deux`,
    html: '<p>ignored</p>',
    messageId: '<n-2@herald>',
    headers: { 'X-Herald-Id': 'n-2-from-header' },
  })
  const got = smtp.messages().find((m) => m.messageId === '<n-2@herald>')
  assert.ok(got)
  assert.equal(
    got.subject,
    'Déploiement réussi ✓ — un sujet assez long pour être plié sur plusieurs lignes par nodemailer',
  )
  assert.equal(got.text, `${long}\nligne deux`)
  assert.equal(got.to, 'ada@example.com, bob@example.com')
  assert.equal(got.heraldId, 'n-2-from-header')
})

test('messages get increasing sequence numbers and clear() empties the list', async () => {
  await send('a@example.com', 'first')
  await send('a@example.com', 'second')
  const [first, second] = smtp.messages().slice(-2)
  assert.equal(first?.text, 'first')
  assert.equal(second?.seq, (first?.seq ?? 0) + 1)
  smtp.clear()
  assert.deepEqual(smtp.messages(), [])
})

test('a permanent recipient is refused at RCPT TO with reply 550 and nodemailer calls it EENVELOPE', async () => {
  smtp.setFaults({ permanentRecipients: ['gone@example.com'] })
  await assert.rejects(send('Gone@Example.com'), (error: MailError) => {
    assert.equal(error.responseCode, 550)
    assert.equal(error.code, 'EENVELOPE')
    assert.equal(error.command, 'RCPT TO')
    assert.equal(error.permanent, true)
    assert.match(error.response ?? '', /^550 5\.1\.1 <gone@example\.com>: Recipient address rejected/i)
    return true
  })
  await send('other@example.com')
})

test('a permanent recipient can carry its own reply code', async () => {
  smtp.setFaults({ permanentRecipients: [{ recipient: 'full@example.com', code: 552 }] })
  await assert.rejects(send('full@example.com'), (error: MailError) => error.responseCode === 552)
})

test('an injected transient failure is reply 451 at the end of DATA, then mail flows again', async () => {
  smtp.setFaults({ failNext: 1 })
  const before = smtp.messages().length
  await assert.rejects(send('a@example.com'), (error: MailError) => {
    assert.equal(error.responseCode, 451)
    assert.equal(error.code, 'EMESSAGE')
    assert.equal(error.permanent, false)
    return true
  })
  assert.equal(smtp.messages().length, before, 'a failed message is not recorded')
  await send('a@example.com', 'after the fault')
  assert.equal(smtp.messages().at(-1)?.text, 'after the fault')
})

test('an injected outage (status 503) is reply 421', async () => {
  smtp.setFaults({ failNext: 2, status: 503 })
  for (let i = 0; i < 2; i++) {
    await assert.rejects(send('a@example.com'), (error: MailError) => error.responseCode === 421)
  }
  await send('a@example.com')
})

test('rejected credentials are reply 535 to AUTH, and 530 to a client that did not authenticate', async () => {
  smtp.setFaults({ authFail: true })
  await assert.rejects(
    transport({ user: 'herald', pass: 'wrong' }).sendMail({
      from: 'h@example.com',
      to: 'a@example.com',
      text: 'x',
    }),
    (error: MailError) => error.responseCode === 535 && error.code === 'EAUTH',
  )
  await assert.rejects(send('a@example.com'), (error: MailError) => error.responseCode === 530)
  smtp.setFaults({})
  await transport({ user: 'herald', pass: 'anything' }).sendMail({
    from: 'h@example.com',
    to: 'a@example.com',
    text: 'any credentials pass without the fault',
  })
})

test('latencyMs delays the answer to DATA', async () => {
  smtp.setFaults({ latencyMs: 300 })
  const started = Date.now()
  await send('a@example.com')
  assert.ok(Date.now() - started >= 300)
})

test('received mail and faults are inspected and set over HTTP', async () => {
  smtp.clear()
  await send('ada@example.com', 'over http')
  const base = smtp.httpUrl
  const listed = (await (await fetch(`${base}/messages`)).json()) as Array<{
    seq: number
    to: string
    text: string
  }>
  assert.equal(listed.length, 1)
  assert.equal(listed[0]?.to, 'ada@example.com')
  assert.equal(listed[0]?.text, 'over http')
  const since = (await (await fetch(`${base}/messages?since=${listed[0]?.seq}`)).json()) as unknown[]
  assert.deepEqual(since, [])

  const put = await fetch(`${base}/faults`, { method: 'PUT', body: JSON.stringify({ failNext: 1 }) })
  assert.equal(put.status, 200)
  assert.deepEqual(await (await fetch(`${base}/faults`)).json(), { failNext: 1 })
  await assert.rejects(send('a@example.com'), (error: MailError) => error.responseCode === 451)
  assert.deepEqual(smtp.faults(), { failNext: 0 })

  assert.equal((await fetch(`${base}/faults`, { method: 'PUT', body: '{nope' })).status, 400)
  assert.equal((await fetch(`${base}/faults`, { method: 'DELETE' })).status, 200)
  assert.deepEqual(smtp.faults(), {})
  assert.equal((await fetch(`${base}/messages`, { method: 'DELETE' })).status, 200)
  assert.deepEqual(await (await fetch(`${base}/messages`)).json(), [])
})

test('a client talking nonsense gets SMTP errors and the stand-in keeps serving', async () => {
  const transcript = await talkRaw(
    smtp.port,
    [
      'HELLO THERE\r\n',
      garbage(300),
      '\r\nEHLO client\r\n',
      'MAIL FROM:<<<>>>\r\n',
      'RCPT TO:<a@example.com>\r\n',
      'MAIL FROM:<h@example.com>\r\n',
      'RCPT TO:<not an address\r\n',
      'QUIT\r\n',
    ],
    { greeting: true },
  )
  assert.match(transcript, /^220 /)
  assert.match(transcript, /\r\n500 /, 'an unknown command is 500')
  assert.match(transcript, /\r\n250[ -]/, 'EHLO is still answered after the garbage')
  assert.match(transcript, /\r\n221 /, 'QUIT is answered')
  // A client that hangs up in the middle of DATA.
  await talkRaw(
    smtp.port,
    [
      'EHLO client\r\n',
      'MAIL FROM:<h@example.com>\r\n',
      'RCPT TO:<a@example.com>\r\n',
      'DATA\r\n',
      'Subject: half',
    ],
    { greeting: true, waitMs: 400 },
  )
  const http = await talkRaw(smtp.port, ['GET / HTTP/1.1\r\nHost: x\r\n\r\n'], { greeting: true })
  assert.match(http, /421 /, 'an HTTP client on the SMTP port is turned away')
  await send('a@example.com', 'still up')
  assert.equal(smtp.messages().at(-1)?.text, 'still up')
})

test('garbage to the HTTP control port is a 400 and the port keeps answering', async () => {
  const answer = await talkRaw(smtp.httpPort, [garbage(200), '\r\n\r\n'])
  assert.match(answer, /^HTTP\/1\.1 400/)
  assert.equal((await fetch(`${smtp.httpUrl}/faults`, { method: 'PUT', body: '[1,2]' })).status, 400)
  assert.equal((await fetch(`${smtp.httpUrl}/faults`, { method: 'PUT', body: '{"failRate":7}' })).status, 400)
  assert.equal((await fetch(`${smtp.httpUrl}/faults`)).status, 200)
})
