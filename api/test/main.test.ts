import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url))

test('a bad configuration stops the api at start, naming every bad variable', () => {
  const run = spawnSync(process.execPath, [main], {
    cwd: tmpdir(), // no .env file here
    env: {
      PATH: process.env.PATH ?? '',
      PRODUCE_TIMEOUT_MS: 'soon',
      API_KEYS: 'no-colon-here',
      REDIS_URL: 'http://127.0.0.1:6379',
    },
    encoding: 'utf8',
    timeout: 20_000,
  })
  assert.equal(run.status, 1, run.stderr)
  for (const name of ['PRODUCE_TIMEOUT_MS', 'API_KEYS', 'REDIS_URL'])
    assert.match(run.stderr, new RegExp(name))
  assert.doesNotMatch(run.stderr, /at .*\.ts:\d+/, 'a message, not a stack trace')
})

test('the api refusing a bad configuration prints no secret from it', () => {
  const secrets = ['k3y-0ps-valid', 'hunter2', 'sm7p-pass', 'xoxb-hook-secret', 'tw1l10-t0ken']
  const run = spawnSync(process.execPath, [main], {
    cwd: tmpdir(),
    env: {
      PATH: process.env.PATH ?? '',
      API_KEYS: 'ops:k3y-0ps-valid,ci-without-key',
      REDIS_URL: 'http://default:hunter2@redis.internal:6379',
      SMTP_URL: 'ftp://mailer:sm7p-pass@smtp.internal',
      SLACK_WEBHOOKS: '{"ops": "https://hooks.slack.com/services/xoxb-hook-secret"',
      TWILIO_API_URL: 'twilio sid:tw1l10-t0ken',
      TWILIO_AUTH_TOKEN: 'tw1l10-t0ken',
    },
    encoding: 'utf8',
    timeout: 20_000,
  })
  assert.equal(run.status, 1, run.stderr)
  for (const name of ['API_KEYS', 'REDIS_URL', 'SMTP_URL', 'SLACK_WEBHOOKS', 'TWILIO_API_URL'])
    assert.match(run.stderr, new RegExp(name))
  for (const secret of secrets) {
    assert.ok(!`${run.stdout}${run.stderr}`.includes(secret), `"${secret}" printed:\n${run.stderr}`)
  }
})
