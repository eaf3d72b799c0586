// WEBHOOK_DESTINATIONS: destination name → {url, secret}. Errors name the destination and the field, never
// a secret or a URL (a URL may carry credentials too).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { loadConfig } from '@herald/shared/config'
import { ConfigError } from '@herald/shared/errors'

function problemsOf(env: Record<string, string>, service: 'api' | 'distributor' = 'api'): string {
  try {
    loadConfig(env, service)
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error))
    return error.message
  }
  assert.fail('the configuration was accepted')
}

test('webhook destinations are read by name with their URL and secret', () => {
  const config = loadConfig(
    {
      CHANNEL: 'webhook',
      WEBHOOK_DESTINATIONS: JSON.stringify({
        ops: { url: 'https://receiver.example.com/hooks/ops', secret: 'ops-secret-0123456789' },
        'team.db': { url: 'http://127.0.0.1:4030/hooks/db', secret: 'db-secret-0123456789' },
      }),
      WEBHOOK_TIMEOUT_MS: '2500',
    },
    'distributor',
  )
  assert.equal(config.channel, 'webhook')
  assert.deepEqual(Object.keys(config.webhook.destinations), ['ops', 'team.db'])
  assert.equal(config.webhook.destinations.ops?.secret, 'ops-secret-0123456789')
  assert.equal(config.webhook.timeoutMs, 2500)
})

test('a webhook distributor without destinations does not start', () => {
  assert.match(
    problemsOf({ CHANNEL: 'webhook' }, 'distributor'),
    /WEBHOOK_DESTINATIONS: required when CHANNEL=webhook/,
  )
})

test('a bad destination is named with its problem, and neither its secret nor any URL is printed', () => {
  const secrets = ['s3cret-short', 'top-s3cret-of-ops-0123', 'pass-in-url-9876', 'third-s3cret-abcdefgh']
  const message = problemsOf({
    WEBHOOK_DESTINATIONS: JSON.stringify({
      short: { url: 'https://receiver.example.com/a', secret: 's3cret-short' },
      ftp: { url: 'ftp://user:pass-in-url-9876@files.example.com/x', secret: 'top-s3cret-of-ops-0123' },
      extra: { url: 'https://receiver.example.com/c', secret: 'third-s3cret-abcdefgh', token: 'x' },
      creds: { url: 'https://user:pass-in-url-9876@receiver.example.com/e', secret: 'third-s3cret-abcdefgh' },
      'a/b': { url: 'https://receiver.example.com/d', secret: 'third-s3cret-abcdefgh' },
    }),
  })
  assert.match(
    message,
    /WEBHOOK_DESTINATIONS: destination "short": secret must be a string of 16 characters or more/,
  )
  assert.match(message, /WEBHOOK_DESTINATIONS: destination "ftp": url must be an http\(s\) URL/)
  assert.match(message, /WEBHOOK_DESTINATIONS: destination "extra": unknown field\(s\): token/)
  assert.match(message, /WEBHOOK_DESTINATIONS: a destination has a name other than/)
  assert.match(message, /WEBHOOK_DESTINATIONS: destination "creds": url must not carry a user or password/)
  for (const secret of secrets) assert.ok(!message.includes(secret), `"${secret}" leaked:\n${message}`)
  assert.ok(!message.includes('example.com'), `a URL leaked:\n${message}`)
})

test('WEBHOOK_DESTINATIONS that is not JSON is an error that echoes none of it', () => {
  const message = problemsOf({
    WEBHOOK_DESTINATIONS: '{"ops": {"url": "https://x.example", "secret": "unclosed-s3cret-value"',
  })
  assert.match(message, /WEBHOOK_DESTINATIONS: must be JSON/)
  assert.ok(!message.includes('unclosed-s3cret-value'), message)
  assert.match(
    problemsOf({ WEBHOOK_DESTINATIONS: '["a-s3cret-in-a-list-00"]' }),
    /WEBHOOK_DESTINATIONS: must be a JSON object/,
  )
})
