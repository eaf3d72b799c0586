import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { faultsFromEnv, parseFaults, StandInState } from '../../dev/standins/common.ts'

const dirs: string[] = []
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

const draws = (state: StandInState, n: number) => Array.from({ length: n }, () => state.shouldFail())

test('failNext fails exactly the next N requests', () => {
  const state = new StandInState('twilio', { faults: { failNext: 2 }, quiet: true })
  assert.deepEqual(draws(state, 4), [true, true, false, false])
  assert.equal(state.faults.failNext, 0)
})

test('failRecipients fails only the listed recipients, case-insensitively, for as long as they are listed', () => {
  const state = new StandInState('twilio', { faults: { failRecipients: ['+14155550100'] }, quiet: true })
  assert.equal(state.shouldFail('+14155550100'), true)
  assert.equal(state.shouldFail('+14155550100'), true, 'not consumed')
  assert.equal(state.shouldFail('+14155550199'), false)
  const mail = new StandInState('smtp', { faults: { failRecipients: ['Slow@Example.com'] }, quiet: true })
  assert.equal(mail.shouldFail('slow@example.com'), true)
  assert.throws(() => parseFaults({ failRecipients: 'x' }), /failRecipients must be a list/)
})

test('failRate 0 never fails and failRate 1 always fails', () => {
  assert.ok(draws(new StandInState('slack', { faults: { failRate: 0 } }), 200).every((f) => !f))
  assert.ok(draws(new StandInState('slack', { faults: { failRate: 1 } }), 200).every((f) => f))
})

test('a seeded failRate fails the same requests every time, near the asked share', () => {
  const first = draws(new StandInState('smtp', { faults: { failRate: 0.3, seed: 42 } }), 1000)
  const again = draws(new StandInState('smtp', { faults: { failRate: 0.3, seed: 42 } }), 1000)
  const other = draws(new StandInState('smtp', { faults: { failRate: 0.3, seed: 43 } }), 1000)
  assert.deepEqual(first, again)
  assert.notDeepEqual(first, other)
  const share = first.filter(Boolean).length / first.length
  assert.ok(share > 0.25 && share < 0.35, `share ${share}`)
})

test('permanent recipients match without regard to case and carry their own code or permanentCode', () => {
  const state = new StandInState('twilio', {
    faults: {
      permanentRecipients: ['Gone@Example.com', { recipient: '+15550002222', code: 21610 }],
      permanentCode: 21614,
    },
  })
  assert.deepEqual(state.permanentError('gone@example.com'), { code: 21614 })
  assert.deepEqual(state.permanentError('+15550002222'), { code: 21610 })
  assert.equal(state.permanentError('+15550003333'), null)
})

test('wrong fault values are refused with a message naming the field, and leave the faults as they were', () => {
  assert.throws(() => parseFaults({ failRate: 2 }), /failRate/)
  assert.throws(() => parseFaults({ failNext: -1 }), /failNext/)
  assert.throws(() => parseFaults({ status: 200 }), /status/)
  assert.throws(() => parseFaults({ permanentRecipients: 'x' }), /permanentRecipients/)
  assert.throws(() => parseFaults({ permanentRecipients: [{ code: 1 }] }), /permanentRecipients/)
  assert.throws(() => parseFaults({ authFail: 'yes' }), /authFail/)
  assert.throws(() => parseFaults({ failrate: 0.5 }), /unknown fault failrate/)
  assert.throws(() => parseFaults([]), /object/)
  const state = new StandInState('slack', { faults: { latencyMs: 5 } })
  assert.throws(() => state.setFaults({ latencyMs: -1 }))
  assert.deepEqual(state.faults, { latencyMs: 5 })
})

test('faults come from the stand-in variable, else STANDIN_FAULTS, and bad JSON names the variable', () => {
  const saved = { own: process.env.X_STANDIN_FAULTS, all: process.env.STANDIN_FAULTS }
  try {
    delete process.env.X_STANDIN_FAULTS
    delete process.env.STANDIN_FAULTS
    assert.deepEqual(faultsFromEnv('X_STANDIN_FAULTS'), {})
    process.env.STANDIN_FAULTS = '{"latencyMs":10}'
    assert.deepEqual(faultsFromEnv('X_STANDIN_FAULTS'), { latencyMs: 10 })
    process.env.X_STANDIN_FAULTS = '{"failNext":3,"status":503,"retryAfter":5}'
    assert.deepEqual(faultsFromEnv('X_STANDIN_FAULTS'), { failNext: 3, status: 503, retryAfter: 5 })
    process.env.X_STANDIN_FAULTS = '{failNext:3}'
    assert.throws(() => faultsFromEnv('X_STANDIN_FAULTS'), /^Error: X_STANDIN_FAULTS: /)
  } finally {
    if (saved.own === undefined) delete process.env.X_STANDIN_FAULTS
    else process.env.X_STANDIN_FAULTS = saved.own
    if (saved.all === undefined) delete process.env.STANDIN_FAULTS
    else process.env.STANDIN_FAULTS = saved.all
  }
})

test('with a record directory every message is appended to <provider>.jsonl', () => {
  const dir = mkdtempSync(join(tmpdir(), 'standin-record-'))
  dirs.push(dir)
  const state = new StandInState('twilio', { recordDir: join(dir, 'nested'), quiet: true })
  state.record({ to: '+15551234567', text: 'one', size: 3 })
  state.record({ to: '+15551234567', text: 'two', size: 3 })
  state.clear()
  const lines = readFileSync(join(dir, 'nested', 'twilio.jsonl'), 'utf8')
    .trim()
    .split('\n')
  const records = lines.map((line) => JSON.parse(line) as { seq: number; text: string; provider: string })
  assert.deepEqual(
    records.map((r) => [r.seq, r.text, r.provider]),
    [
      [1, 'one', 'twilio'],
      [2, 'two', 'twilio'],
    ],
  )
})

test('maxMessages keeps only the newest messages in memory, with their sequence numbers', () => {
  const state = new StandInState('slack', { maxMessages: 2, quiet: true })
  for (const text of ['a', 'b', 'c']) state.record({ to: '/services/x', text, size: 1 })
  assert.deepEqual(
    state.messages().map((m) => [m.seq, m.text]),
    [
      [2, 'b'],
      [3, 'c'],
    ],
  )
})
