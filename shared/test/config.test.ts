// loadConfig's errors name the variable and the reason, never a secret's value.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { loadConfig } from '@herald/shared/config'
import { ConfigError } from '@herald/shared/errors'

const secrets = ['k3y-0ps-valid', 'hunter2', 'sm7p-pass', 'T0KEN-in-url', 'xoxb-hook-secret', 'tw1l10-t0ken']

/** The ConfigError loadConfig throws for this environment. */
function problemsOf(env: Record<string, string>): string {
  try {
    loadConfig(env, 'api')
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error))
    return error.message
  }
  assert.fail('the configuration was accepted')
}

describe('configuration errors', () => {
  test('malformed secret-bearing variables are named with a reason, and no secret is printed', () => {
    const message = problemsOf({
      API_KEYS: 'ops:k3y-0ps-valid,broken-entry-without-colon',
      REDIS_URL: 'http://default:hunter2@redis.internal:6379',
      SMTP_URL: 'ftp://mailer:sm7p-pass@smtp.internal',
      SLACK_WEBHOOKS: '{"ops": "https://hooks.slack.com/services/xoxb-hook-secret"',
      SLACK_WEBHOOK_URL: 'not a url T0KEN-in-url',
      TWILIO_API_URL: 'twilio sid:tw1l10-t0ken',
    })
    for (const name of [
      'API_KEYS',
      'REDIS_URL',
      'SMTP_URL',
      'SLACK_WEBHOOKS',
      'SLACK_WEBHOOK_URL',
      'TWILIO_API_URL',
    ]) {
      assert.match(message, new RegExp(`^\\s*${name}: \\S`, 'm'), `${name} is named with a reason`)
    }
    for (const secret of secrets) assert.ok(!message.includes(secret), `"${secret}" leaked:\n${message}`)
  })

  test('an API_KEYS error says which entry is wrong by position, without echoing any entry', () => {
    const message = problemsOf({ API_KEYS: 'ops:k3y-0ps-valid,k3y-alone' })
    assert.match(message, /API_KEYS: entry 2 /)
    assert.ok(!message.includes('k3y'), message)
  })

  test('values that are not secret are still shown, to help fix them', () => {
    const message = problemsOf({ PRODUCE_TIMEOUT_MS: 'soon', LOG_LEVEL: 'loud' })
    assert.match(message, /PRODUCE_TIMEOUT_MS: .*"soon"/)
    assert.match(message, /LOG_LEVEL: .*"loud"/)
  })

  test('API_KEYS entries are senders unless they say admin; another role is an error', () => {
    const config = loadConfig({ API_KEYS: 'ops:k1:admin, ci:k2 ,bot:k3:sender' }, 'api')
    assert.deepEqual(Object.fromEntries(config.apiKeys), {
      ops: { key: 'k1', role: 'admin' },
      ci: { key: 'k2', role: 'sender' },
      bot: { key: 'k3', role: 'sender' },
    })
    assert.match(problemsOf({ API_KEYS: 'ops:k1:root' }), /API_KEYS: entry 1 has an unknown role/)
    assert.match(problemsOf({ API_KEYS: 'ops:k1,ops:k2' }), /API_KEYS: entry 2 repeats the name/)
  })
})
