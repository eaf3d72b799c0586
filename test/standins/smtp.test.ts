import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import nodemailer from 'nodemailer'
import { type SmtpStandIn, startSmtpStandIn } from '../../dev/standins/smtp.ts'

let smtp: SmtpStandIn
const transport = () =>
  nodemailer.createTransport({ host: '127.0.0.1', port: smtp.port, secure: false, ignoreTLS: true })

before(async () => {
  smtp = await startSmtpStandIn({ port: 0, httpPort: 0, quiet: true })
})
after(async () => {
  await smtp.close()
})

test('nodemailer delivers to the SMTP stand-in and the mail arrives intact', async () => {
  smtp.setFaults({})
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
  assert.equal(got.to, 'ada@example.com')
  assert.equal(got.from, 'herald@example.com')
  assert.equal(got.subject, 'Deploy finished')
  assert.equal(got.text, 'All green.')
  assert.equal(got.heraldId, 'n-1')
})

test('a permanent recipient is refused at RCPT TO with reply 550', async () => {
  smtp.setFaults({ permanentRecipients: ['gone@example.com'] })
  await assert.rejects(
    transport().sendMail({ from: 'h@example.com', to: 'gone@example.com', text: 'x' }),
    (error: { responseCode?: number; code?: string }) =>
      error.responseCode === 550 && error.code === 'EENVELOPE',
  )
})

test('an injected transient failure is reply 451, and 421 when the service is unavailable', async () => {
  smtp.setFaults({ failNext: 1 })
  await assert.rejects(
    transport().sendMail({ from: 'h@example.com', to: 'a@example.com', text: 'x' }),
    (error: { responseCode?: number }) => error.responseCode === 451,
  )
  smtp.setFaults({ failNext: 1, status: 503 })
  await assert.rejects(
    transport().sendMail({ from: 'h@example.com', to: 'a@example.com', text: 'x' }),
    (error: { responseCode?: number }) => error.responseCode === 421,
  )
  smtp.setFaults({})
  await transport().sendMail({ from: 'h@example.com', to: 'a@example.com', text: 'after the faults' })
})

test('rejected credentials are reply 535', async () => {
  smtp.setFaults({ authFail: true })
  const withAuth = nodemailer.createTransport({
    host: '127.0.0.1',
    port: smtp.port,
    secure: false,
    ignoreTLS: true,
    auth: { user: 'herald', pass: 'wrong' },
  })
  await assert.rejects(
    withAuth.sendMail({ from: 'h@example.com', to: 'a@example.com', text: 'x' }),
    (error: { responseCode?: number }) => error.responseCode === 535,
  )
  smtp.setFaults({})
})

test('received mail and faults are inspected and set over HTTP', async () => {
  const base = `http://127.0.0.1:${smtp.httpPort}`
  const put = await fetch(`${base}/faults`, { method: 'PUT', body: JSON.stringify({ latencyMs: 1 }) })
  assert.equal(put.status, 200)
  assert.deepEqual(await (await fetch(`${base}/faults`)).json(), { latencyMs: 1 })
  const listed = (await (await fetch(`${base}/messages`)).json()) as unknown[]
  assert.equal(listed.length, smtp.messages().length)
  assert.equal((await fetch(`${base}/faults`, { method: 'PUT', body: '{nope' })).status, 400)
  await fetch(`${base}/faults`, { method: 'DELETE' })
})
