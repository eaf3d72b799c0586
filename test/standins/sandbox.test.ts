import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { test } from 'node:test'
import { IncomingWebhook } from '@slack/webhook'
import nodemailer from 'nodemailer'
import twilio from 'twilio'
import { startSandbox } from '../../dev/standins/index.ts'

const repoRoot = join(import.meta.dirname, '..', '..')
const zeroPorts = { smtp: 0, smtpHttp: 0, twilio: 0, slack: 0, webhook: 0 }

test('startSandbox starts the stand-ins and its env reaches them through the real SDKs and fetch', async () => {
  delete process.env.TWILIO_EDGE
  delete process.env.TWILIO_REGION
  const sandbox = await startSandbox({
    ports: zeroPorts,
    quiet: true,
    faults: { smtp: {}, twilio: {}, slack: {} },
  })
  try {
    const { env } = sandbox
    await nodemailer
      .createTransport({ url: env.SMTP_URL, ignoreTLS: true })
      .sendMail({ from: 'h@example.com', to: 'a@example.com', text: 'mail' })
    const sms = twilio(env.TWILIO_ACCOUNT_SID, env.TWILIO_AUTH_TOKEN, { autoRetry: false })
    sms.api.baseUrl = env.TWILIO_API_URL ?? ''
    await sms.messages.create({ to: '+15551234567', from: env.TWILIO_FROM ?? '', body: 'sms' })
    const hooks = JSON.parse(env.SLACK_WEBHOOKS ?? '{}') as Record<string, string>
    await new IncomingWebhook(hooks.ops ?? '').send({ text: 'slack' })
    assert.deepEqual(
      sandbox.smtp.messages().map((m) => m.text),
      ['mail'],
    )
    assert.deepEqual(
      sandbox.twilio.messages().map((m) => m.text),
      ['sms'],
    )
    assert.deepEqual(
      sandbox.slack.messages().map((m) => [m.to, m.text]),
      [['/services/T000/B000/ops', 'slack']],
    )
    const destinations = JSON.parse(env.WEBHOOK_DESTINATIONS ?? '{}') as Record<string, { url: string }>
    const answer = await fetch(destinations.ops?.url ?? '', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ notification: { id: 'n1', message: 'webhook' } }),
    })
    assert.equal(answer.status, 200)
    assert.deepEqual(
      sandbox.webhook.messages().map((m) => [m.to, m.text]),
      [['/hooks/ops', 'webhook']],
    )
    assert.ok(sandbox.describe().some((line) => line.includes(`${sandbox.smtp.httpUrl}/messages`)))
  } finally {
    await sandbox.close()
  }
})

test('startSandbox takes faults from the environment when none are given', async () => {
  process.env.SLACK_STANDIN_FAULTS = '{"failNext":1,"status":503}'
  try {
    const sandbox = await startSandbox({ ports: zeroPorts, quiet: true })
    try {
      assert.deepEqual(sandbox.slack.faults(), { failNext: 1, status: 503 })
    } finally {
      await sandbox.close()
    }
  } finally {
    delete process.env.SLACK_STANDIN_FAULTS
  }
})

test('a port in use is a readable error and nothing is left listening', async () => {
  const blocker = createServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  const taken = (blocker.address() as { port: number }).port
  try {
    await assert.rejects(
      startSandbox({ ports: { ...zeroPorts, slack: taken }, quiet: true }),
      new RegExp(`Slack stand-in: port ${taken} on 127.0.0.1 is already in use`),
    )
    await assert.rejects(
      startSandbox({ ports: { ...zeroPorts, twilio: -1 }, quiet: true }),
      /TWILIO_STANDIN_PORT/,
    )
  } finally {
    blocker.close()
  }
})

test("npm run sandbox prints where the stand-ins (the alerts engine's too) listen and exits 0 on SIGTERM", async (t) => {
  const child = spawn(process.execPath, [join(repoRoot, 'dev', 'sandbox.ts')], {
    cwd: repoRoot,
    env: {
      ...process.env,
      SMTP_STANDIN_PORT: '0',
      SMTP_STANDIN_HTTP_PORT: '0',
      TWILIO_STANDIN_PORT: '0',
      SLACK_STANDIN_PORT: '0',
      WEBHOOK_STANDIN_PORT: '0',
      ALERTS_ENGINE_STANDIN_PORT: '0',
      // No random 500s: the test asks the engine stand-in once.
      ALERTS_ENGINE_STANDIN_FAULTS: '{}',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  // A failed assertion must not leave the stand-ins running (and the test file waiting on them).
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString()
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const deadline = Date.now() + 30_000 // a bound for a busy machine; the loops end as soon as the line is there
  while (!out.includes('Ctrl-C') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  assert.match(out, /SMTP\s+smtp:\/\/127\.0\.0\.1:\d+/)
  assert.match(out, /Twilio\s+http:\/\/127\.0\.0\.1:\d+/)
  assert.match(out, /Slack\s+http:\/\/127\.0\.0\.1:\d+\/services/)
  // The alerts engine's stand-in too (the rules evaluator's ALERTS_ENGINE_URL under npm start and compose).
  const engineUrl = /ALERTS_ENGINE_URL=(\S+)/.exec(out)?.[1] ?? ''
  assert.match(engineUrl, /^http:\/\/127\.0\.0\.1:\d+$/)
  assert.match(out, new RegExp(`Alerts\\s+${engineUrl}/alerts`))
  const alerts = await fetch(`${engineUrl}/alerts`)
  assert.equal(alerts.status, 200)
  assert.deepEqual(await alerts.json(), [])
  // The Slack stand-in the child started answers, and logs one line per message.
  const slackUrl = /SLACK_WEBHOOK_URL=(\S+)/.exec(out)?.[1] ?? ''
  assert.equal((await new IncomingWebhook(slackUrl).send({ text: 'hello sandbox' })).text, 'ok')
  while (!out.includes('hello sandbox') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  assert.match(out, /\[slack\] #1 to \/services\/T000\/B000\/default: hello sandbox/)
  child.kill('SIGTERM')
  assert.equal(await exited, 0)
})
