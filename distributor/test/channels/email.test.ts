import assert from 'node:assert/strict'
import { test } from 'node:test'
import { classifySmtpError, messageIdFor } from '../../src/channels/email.ts'

// What nodemailer reports, by SMTP reply (RFC 5321 classes; 535 per RFC 4954) or connection error code.
const table: Array<
  [string, { responseCode?: number; code?: string }, 'retryable' | 'permanent' | 'provider']
> = [
  ['421 service not available', { responseCode: 421, code: 'EENVELOPE' }, 'retryable'],
  ['450 mailbox unavailable (busy)', { responseCode: 450, code: 'EENVELOPE' }, 'retryable'],
  ['451 local error', { responseCode: 451, code: 'EMESSAGE' }, 'retryable'],
  ['452 insufficient storage', { responseCode: 452, code: 'EENVELOPE' }, 'retryable'],
  ['550 mailbox unavailable', { responseCode: 550, code: 'EENVELOPE' }, 'permanent'],
  ['553 mailbox name not allowed', { responseCode: 553, code: 'EENVELOPE' }, 'permanent'],
  ['554 transaction failed', { responseCode: 554, code: 'EMESSAGE' }, 'permanent'],
  ['535 authentication credentials invalid', { responseCode: 535, code: 'EAUTH' }, 'provider'],
  ['530 authentication required', { responseCode: 530, code: 'EENVELOPE' }, 'provider'],
  ['connection refused', { code: 'ECONNECTION' }, 'retryable'],
  ['socket timeout', { code: 'ETIMEDOUT' }, 'retryable'],
]

for (const [name, error, expected] of table) {
  test(`SMTP ${name} is ${expected}`, () => {
    const classified = classifySmtpError(Object.assign(new Error(name), error))
    assert.equal(classified.failureClass, expected)
  })
}

test('the Message-ID is derived from the notification id', () => {
  assert.equal(messageIdFor('0193-abc'), '<0193-abc@herald>')
})
