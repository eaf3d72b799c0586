// `npm run herald -- dlq list|replay` as an operator runs it: a child process that reads the namespace's
// dead-letter topic in real Kafka and moves statuses in real Redis, with the services' configuration. The
// test writes the dead letters itself, with the headers a distributor gives them.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { before, describe, test } from 'node:test'
import { testContext } from '../../test/support/context.ts'
import { serviceEnv, type TestNamespace } from '../../test/support/fixtures.ts'

const ctx = testContext()
const cli = join(import.meta.dirname, '../src/cli.ts')
let ns: TestNamespace
/** The dead letters written, by id: where they landed. */
const letters = new Map<string, { partition: number; offset: string }>()

const permanentId = () => `${ns.prefix}-permanent`
const retryableId = () => `${ns.prefix}-retryable`

before(async () => {
  ns = await ctx.setup('cli-dlq', 2)
  const statuses = ctx.statuses(ns)
  const failures = [
    { id: permanentId(), errorClass: 'permanent', error: 'Twilio 21610: unsubscribed', attempts: 1 },
    { id: retryableId(), errorClass: 'retryable', error: 'Twilio 500', attempts: 3 },
  ]
  for (const f of failures) {
    await statuses.set(f.id, 'queued', 'create', { channel: 'sms', attempts: 0 })
    await statuses.set(f.id, 'dead_lettered', 'move', {
      channel: 'sms',
      attempts: f.attempts,
      lastError: f.error,
    })
  }
  const written = await ctx.producer.send({
    topic: ns.topics.deadLetter('sms'),
    acks: -1,
    messages: failures.map((f, i) => ({
      key: '+14155550100',
      value: JSON.stringify({ id: f.id, channel: 'sms', to: '+14155550100', message: 'x' }),
      headers: {
        'herald-error-class': f.errorClass,
        'herald-error': f.error,
        'herald-attempts': String(f.attempts),
        'herald-failed-at': new Date().toISOString(),
        'herald-original-topic': ns.topics.main('sms'),
        'herald-original-partition': '0',
        'herald-original-offset': String(i),
      },
    })),
  })
  // One batch to one partition (the same key): consecutive offsets from the base offset.
  const [first] = written
  assert.ok(first?.baseOffset !== undefined)
  failures.forEach((f, i) => {
    letters.set(f.id, { partition: first.partition, offset: String(Number(first.baseOffset) + i) })
  })
})

function herald(args: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [cli, ...args],
      { env: { PATH: process.env.PATH ?? '', ...serviceEnv(ns, {}), ...env } },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    )
  })
}

interface Letter {
  partition: number
  offset: string
  id?: string
  key?: string
  errorClass: string
  error: string
  attempts: number
  failedAt: string
  original: { topic: string; partition: number; offset: string }
}

describe('herald dlq', () => {
  test('list --json prints every dead letter with its fields; a line each and a count without', async () => {
    const json = await herald(['dlq', 'list', '--channel', 'sms', '--json'])
    assert.equal(json.code, 0, json.stderr)
    const listed = JSON.parse(json.stdout) as Letter[]
    assert.deepEqual(listed.map((l) => l.id).sort(), [permanentId(), retryableId()].sort())
    const permanent = listed.find((l) => l.id === permanentId())
    assert.deepEqual(
      permanent && {
        ...permanent,
        failedAt: Number.isNaN(Date.parse(permanent.failedAt)) ? permanent.failedAt : 'a time',
      },
      {
        ...letters.get(permanentId()),
        id: permanentId(),
        key: '+14155550100',
        errorClass: 'permanent',
        error: 'Twilio 21610: unsubscribed',
        attempts: 1,
        failedAt: 'a time',
        original: { topic: ns.topics.main('sms'), partition: 0, offset: '0' },
      },
    )

    const filtered = await herald(['dlq', 'list', '--channel', 'sms', '--class', 'retryable', '--json'])
    assert.equal(filtered.code, 0, filtered.stderr)
    assert.deepEqual(
      (JSON.parse(filtered.stdout) as Letter[]).map((l) => [l.id, l.attempts]),
      [[retryableId(), 3]],
    )

    const human = await herald(['dlq', 'list', '--channel', 'sms', '--class', 'permanent'])
    assert.equal(human.code, 0, human.stderr)
    const at = letters.get(permanentId())
    assert.deepEqual(
      human.stdout
        .trimEnd()
        .split('\n')
        .map((line) => line.split('\t').slice(0, 3)),
      [[`${at?.partition}:${at?.offset}`, permanentId(), 'permanent'], ['1 dead letter(s) found on sms']],
    )
  })

  test('replay --json prints what it replayed, and its status is queued again', async () => {
    const at = letters.get(permanentId())
    const replay = await herald([
      'dlq',
      'replay',
      '--channel',
      'sms',
      '--at',
      `${at?.partition}:${at?.offset}`,
      '--json',
    ])
    assert.equal(replay.code, 0, replay.stderr)
    assert.deepEqual(
      (JSON.parse(replay.stdout) as Letter[]).map((l) => [l.id, l.errorClass]),
      [[permanentId(), 'permanent']],
    )
    const view = await ctx.statuses(ns).get(permanentId())
    assert.equal(view?.status, 'queued')
    assert.deepEqual(
      view?.history.map((e) => e.status),
      ['queued', 'dead_lettered', 'queued'],
    )
    assert.equal(
      (await ctx.statuses(ns).get(retryableId()))?.status,
      'dead_lettered',
      'only the one asked for',
    )
  })

  test('usage exits 2: no channel, an unknown one, an unknown option, a bad limit, a replay with no selection', async () => {
    for (const args of [
      ['dlq', 'list'],
      ['dlq', 'list', '--channel', 'fax'],
      ['dlq', 'list', '--channel', 'sms', '--colour', 'red'],
      ['dlq', 'list', '--channel', 'sms', '--limit', 'ten'],
      ['dlq', 'list', 'more', '--channel', 'sms'],
      ['dlq', 'list', '--channel', 'sms', '--since', 'yesterday'],
      ['dlq', 'replay', '--channel', 'sms', '--json'],
      ['dlq', 'purge', '--channel', 'sms'],
    ]) {
      const run = await herald(args)
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`)
      assert.equal(run.stdout, '', `${args.join(' ')} prints nothing on stdout`)
    }
  })

  test('a configuration the services would refuse exits 1 with why', async () => {
    const run = await herald(['dlq', 'list', '--channel', 'sms', '--json'], { KAFKA_BROKERS: '' })
    assert.equal(run.code, 1)
    assert.match(run.stderr, /^herald: invalid configuration:\n {2}KAFKA_BROKERS: /)
    assert.equal(run.stdout, '')
  })
})
