// `npm run herald -- status|lag` as an operator runs it: a child process talking to a real api (real Kafka
// and Redis) through HERALD_URL and HERALD_API_KEY. No distributor runs: the test moves statuses itself, as a
// distributor would, and what it sends stays unfinished, so the lag is what it sent.
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { join } from 'node:path'
import { before, describe, test } from 'node:test'
import { redisKeys } from '@herald/shared/redis/keys'
import { StatusStore } from '@herald/shared/status'
import { startTestApi, type TestApi } from '../../test/support/api.ts'
import { testContext } from '../../test/support/context.ts'
import type { TestNamespace } from '../../test/support/fixtures.ts'
import { eventually } from '../../test/support/service-process.ts'
import { exitCodes } from '../src/cli-ops.ts'

const ctx = testContext()
const cli = join(import.meta.dirname, '../src/cli.ts')
let ns: TestNamespace
let api: TestApi
let statuses: StatusStore

before(async () => {
  await ctx.ready
  ns = ctx.namespace('cli-ops')
  api = await startTestApi(ns, {
    brokers: ctx.brokers,
    redisUrl: ctx.redisUrl,
    env: { TOPIC_PARTITIONS: '2', API_KEYS: 'ops:s3cret:admin' },
  })
  ctx.teardown(() => api.stop())
  statuses = new StatusStore(ctx.redis, redisKeys(ns.prefix), 3600)
})

const env = (key: string) => ({ PATH: process.env.PATH ?? '', HERALD_URL: api.url, HERALD_API_KEY: key })

function herald(args: string[], key = 's3cret') {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [cli, ...args], { env: env(key) }, (error, stdout, stderr) =>
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    )
  })
}

/** Starts `herald status <id> --watch --json`; its JSON lines as they come, and its exit code. */
function watch(id: string) {
  const child = spawn(process.execPath, [cli, 'status', id, '--watch', '--json', '--interval', '0.2'], {
    env: env('s3cret'),
  })
  const lines: Array<{ status: string }> = []
  let buffered = ''
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString()
    const parts = buffered.split('\n')
    buffered = parts.pop() ?? ''
    for (const part of parts) if (part.trim()) lines.push(JSON.parse(part))
  })
  const code = new Promise<number | null>((resolve) => child.once('exit', resolve))
  return { lines, code }
}

/** SMS notifications sent by this file: nothing delivers them, so they are the lag of sms. */
let sent = 0
async function sendSms(to: string): Promise<string> {
  sent++
  const answer = await api.call('POST', '/notification', { channel: 'sms', to, message: 'x' })
  assert.equal(answer.status, 202, JSON.stringify(answer.body))
  return answer.body.id as string
}

describe('herald status', () => {
  test('prints a status as JSON or as a line; an unknown id exits 3, a wrong key 1, no id 2', async () => {
    const id = await sendSms('+14155550111')
    const json = await herald(['status', id, '--json'])
    assert.equal(json.code, exitCodes.ok, json.stderr)
    assert.deepEqual(
      (({ id: i, status, channel, attempts }) => ({ id: i, status, channel, attempts }))(
        JSON.parse(json.stdout),
      ),
      { id, status: 'queued', channel: 'sms', attempts: 0 },
    )
    const human = await herald(['status', id])
    assert.equal(human.code, 0)
    assert.match(human.stdout, new RegExp(`^${id}\\tqueued\\tsms\\tattempts 0\\t`))

    const unknown = await herald(['status', `${ns.prefix}-nope`, '--json'])
    assert.equal(unknown.code, exitCodes.notFound)
    assert.match(unknown.stderr, /404/)
    assert.equal((await herald(['status', id], 'wrong')).code, exitCodes.failed)
    assert.equal((await herald(['status'])).code, exitCodes.usage)
    assert.equal(
      (await herald(['status', id, '--interval', '1'])).code,
      exitCodes.usage,
      '--interval needs --watch',
    )
  })

  test('prints the timeline under the status line; --json has it as history', async () => {
    const id = await sendSms('+14155550115')
    await statuses.set(id, 'retrying', 'move', { channel: 'sms', attempts: 1, lastError: 'Twilio 503' })
    await statuses.set(id, 'delivered', 'move', { channel: 'sms', attempts: 2 })
    const json = await herald(['status', id, '--json'])
    assert.equal(json.code, exitCodes.ok, json.stderr)
    const body = JSON.parse(json.stdout) as {
      history: Array<{ status: string; at: string; attempts?: number; lastError?: string }>
    }
    assert.deepEqual(
      body.history.map(({ status, attempts, lastError }) => ({ status, attempts, lastError })),
      [
        { status: 'queued', attempts: 0, lastError: undefined },
        { status: 'retrying', attempts: 1, lastError: 'Twilio 503' },
        { status: 'delivered', attempts: 2, lastError: undefined },
      ],
    )

    const human = await herald(['status', id])
    assert.equal(human.code, exitCodes.ok, human.stderr)
    const [first, ...timeline] = human.stdout.trimEnd().split('\n')
    assert.match(first ?? '', new RegExp(`^${id}\tdelivered\tsms\tattempts 2\t`))
    assert.deepEqual(timeline, [
      `\t${body.history[0]?.at}\tqueued\tattempts 0`,
      `\t${body.history[1]?.at}\tretrying\tattempts 1\tTwilio 503`,
      `\t${body.history[2]?.at}\tdelivered\tattempts 2`,
    ])
  })

  test('--watch prints each change and exits 0 once delivered, 4 once dead-lettered', async () => {
    const delivered = await sendSms('+14155550112')
    const a = watch(delivered)
    await eventually('the queued status printed', () => (a.lines[0]?.status === 'queued' ? true : undefined))
    await statuses.set(delivered, 'retrying', 'move', { attempts: 1, lastError: 'Twilio 503' })
    await eventually('the retrying status printed', () =>
      a.lines[1]?.status === 'retrying' ? true : undefined,
    )
    await statuses.set(delivered, 'delivered', 'move', { attempts: 2 })
    assert.equal(await a.code, exitCodes.ok)
    assert.deepEqual(
      a.lines.map((l) => l.status),
      ['queued', 'retrying', 'delivered'],
    )

    const failed = await sendSms('+14155550113')
    const b = watch(failed)
    await eventually('the queued status printed', () => (b.lines[0]?.status === 'queued' ? true : undefined))
    await statuses.set(failed, 'dead_lettered', 'move', { attempts: 1, lastError: 'Twilio 21610' })
    assert.equal(await b.code, exitCodes.notDelivered)
    assert.equal(b.lines.at(-1)?.status, 'dead_lettered')
  })
})

describe('herald lag', () => {
  test("prints every channel's lag, or one channel's with its partitions; JSON is the api's answer", async () => {
    await sendSms('+14155550114')
    const all = await eventually('the lag of sms counts what was sent', async () => {
      const run = await herald(['lag', '--json'])
      assert.equal(run.code, 0, run.stderr)
      const body = JSON.parse(run.stdout) as {
        channels: Array<{ channel: string; lag: number; replicas: number | null }>
      }
      const sms = body.channels.find((c) => c.channel === 'sms')
      return sms && sms.lag >= sent ? body : undefined
    })
    assert.deepEqual(all.channels.map((c) => c.channel).sort(), ['email', 'slack', 'sms', 'webhook'])
    const sms = all.channels.find((c) => c.channel === 'sms')
    assert.deepEqual([sms?.lag, sms?.replicas], [sent, 0])

    const one = await herald(['lag', '--channel', 'sms', '--json'])
    const body = JSON.parse(one.stdout) as { channels: Array<{ channel: string; partitions: unknown[] }> }
    assert.deepEqual(
      body.channels.map((c) => [c.channel, c.partitions.length]),
      [['sms', 2]],
    )
    const human = await herald(['lag', '--channel', 'sms'])
    assert.equal(human.code, 0)
    assert.match(
      human.stdout,
      new RegExp(
        `^CHANNEL\\tLAG\\tPER_SECOND\\tOLDEST\\tREPLICAS\\nsms\\t${sent}\\t(-|0/s)\\t\\d+s\\t0\\n {2}partition 0\\t`,
      ),
    )

    assert.equal((await herald(['lag', '--channel', 'fax'])).code, exitCodes.usage)
    assert.equal((await herald(['lag', 'extra'])).code, exitCodes.usage)
    assert.equal((await herald(['lag'], 'wrong')).code, exitCodes.failed)
  })

  test('throughput counts the records finished since the earlier snapshots', async () => {
    interface Lag {
      channels: Array<{
        group: string
        topic: string
        lag: number
        deliveriesPerSecond: number | null
        partitions: Array<{ partition: number; end: number }>
      }>
    }
    const read = async () => {
      const run = await herald(['lag', '--channel', 'sms', '--json'])
      assert.equal(run.code, 0, run.stderr)
      return (JSON.parse(run.stdout) as Lag).channels[0] as Lag['channels'][0]
    }
    const before = await read()
    assert.ok(before.lag >= 1, 'what this file sent is unfinished')
    // Finish everything as a distributor would: its stored next offsets move to the log ends.
    await ctx.redis.hset(
      redisKeys(ns.prefix).offsets(before.group, before.topic),
      Object.fromEntries(before.partitions.map((p) => [String(p.partition), String(p.end)])),
    )
    const after = await eventually('a positive throughput once the offsets moved', async () => {
      const sms = await read()
      return sms.lag === 0 && (sms.deliveriesPerSecond ?? 0) > 0 ? sms : undefined
    })
    assert.ok((after.deliveriesPerSecond ?? 0) <= before.lag, 'no more than what finished, over at least 1 s')
    const human = await herald(['lag'])
    assert.match(human.stdout, /\nsms\t0\t\d+(\.\d)?\/s\t-\t0\n/)
  })
})

/** Runs the CLI with `input` on its stdin. */
function heraldWithInput(args: string[], input: string) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const child = execFile(
      process.execPath,
      [cli, ...args],
      { env: env('s3cret') },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    )
    child.stdin?.end(input)
  })
}

// On email, so the sms lag above stays what that test sent.
describe('herald send', () => {
  test('prints the id of the accepted notification, or the answer with --json; its status is queued', async () => {
    const plain = await herald([
      'send',
      '--channel',
      'email',
      '--to',
      'ada@example.com',
      '--subject',
      'Disk',
      '--message',
      'disk 97% full',
    ])
    assert.equal(plain.code, exitCodes.ok, plain.stderr)
    const id = plain.stdout.trim()
    assert.match(plain.stdout, /^[0-9a-f-]{36}\n$/)
    const status = await api.call('GET', `/notification/${id}`)
    assert.equal(status.status, 200)
    assert.deepEqual([status.body.status, status.body.channel], ['queued', 'email'])

    const json = await herald([
      'send',
      '--channel',
      'email',
      '--to',
      'ada@example.com',
      '--message',
      'x',
      '--json',
    ])
    assert.equal(json.code, exitCodes.ok, json.stderr)
    const body = JSON.parse(json.stdout) as { id: string; status: string }
    assert.equal(body.status, 'queued')
    assert.notEqual(body.id, id)

    const piped = await heraldWithInput(
      ['send', '--channel', 'email', '--to', 'ada@example.com', '--message', '-', '--json'],
      'from stdin\n',
    )
    assert.equal(piped.code, exitCodes.ok, piped.stderr)
    const pipedId = (JSON.parse(piped.stdout) as { id: string }).id
    const record = await eventually('the piped notification readable', async () => {
      const answer = await api.call('GET', `/notification/${pipedId}`)
      return answer.status === 200 ? answer.body : undefined
    })
    assert.equal(record.id, pipedId)
    // The text is what stdin holds: nothing there is a message the api refuses.
    const empty = await heraldWithInput(
      ['send', '--channel', 'email', '--to', 'ada@example.com', '--message', '-'],
      '',
    )
    assert.equal(empty.code, exitCodes.usage)
    assert.match(empty.stderr, /message/)
  })

  test('an Idempotency-Key gives the same id twice; a recipient prints the parent and its children', async () => {
    const args = ['send', '--channel', 'email', '--to', 'ada@example.com', '--message', 'once']
    const key = `${ns.prefix}-once`
    const first = await herald([...args, '--idempotency-key', key])
    const again = await herald([...args, '--idempotency-key', key])
    assert.equal(first.code, exitCodes.ok, first.stderr)
    assert.equal(again.code, exitCodes.ok, again.stderr)
    assert.equal(again.stdout, first.stdout)

    const put = await api.call('PUT', '/recipients/ada', {
      name: 'Ada',
      email: 'ada@example.com',
      channels: ['email'],
    })
    assert.ok([200, 201].includes(put.status), JSON.stringify(put.body))
    const fanned = await eventually('the recipient is known to the api', async () => {
      const run = await herald(['send', '--recipient', 'ada', '--message', 'hello', '--json'])
      return run.code === exitCodes.ok ? run : undefined
    })
    const parent = JSON.parse(fanned.stdout) as {
      id: string
      children: Array<{ id: string; channel: string }>
    }
    assert.deepEqual(
      parent.children.map((c) => c.channel),
      ['email'],
    )
    const human = await herald(['send', '--recipient', 'ada', '--message', 'hello again'])
    assert.equal(human.code, exitCodes.ok, human.stderr)
    assert.match(human.stdout, /^[0-9a-f-]{36}\n[^\t\n]+\temail\n$/)
  })

  test('exit codes: 2 for usage and for what the api finds invalid, 1 refused or unreachable', async () => {
    const usage = [
      ['send', '--channel', 'email', '--to', 'ada@example.com'],
      ['send', '--to', 'ada@example.com', '--message', 'x'],
      ['send', '--channel', 'email', '--to', 'a@example.com', '--recipient', 'ada', '--message', 'x'],
      ['send', 'extra', '--channel', 'email', '--message', 'x'],
      ['lag', '--message', 'x'],
    ]
    for (const args of usage) {
      const run = await herald(args)
      assert.equal(run.code, exitCodes.usage, args.join(' '))
      assert.equal(run.stdout, '', 'nothing sent')
    }
    const invalid = await herald(['send', '--channel', 'email', '--to', 'not-an-address', '--message', 'x'])
    assert.equal(invalid.code, exitCodes.usage)
    assert.match(invalid.stderr, /^400 .*\n {2}to: /)
    const unknown = await herald(['send', '--recipient', 'nobody', '--message', 'x'])
    assert.equal(unknown.code, exitCodes.usage)
    assert.match(unknown.stderr, /^422 /)
    const refused = await herald(
      ['send', '--channel', 'email', '--to', 'ada@example.com', '--message', 'x'],
      'wrong',
    )
    assert.equal(refused.code, exitCodes.failed)
    assert.match(refused.stderr, /^401 /)
    const unreachable = await new Promise<number>((resolve) =>
      execFile(
        process.execPath,
        [cli, 'send', '--channel', 'email', '--to', 'ada@example.com', '--message', 'x'],
        { env: { PATH: process.env.PATH ?? '', HERALD_URL: 'http://127.0.0.1:9' } },
        (error) => resolve(error ? Number((error as { code?: number }).code ?? 1) : 0),
      ),
    )
    assert.equal(unreachable, exitCodes.failed)
  })
})

describe('--help', () => {
  test('every verb prints its usage, --json and exit codes on stdout and exits 0; an unknown verb exits 2', async () => {
    const verbs: Array<[string[], string]> = [
      [['send'], 'herald -- send'],
      [['status'], 'herald -- status'],
      [['lag'], 'herald -- lag'],
      [['dlq', 'list'], 'herald -- dlq list'],
      [['dlq', 'replay'], 'herald -- dlq replay'],
      [['recipients', 'set'], 'herald -- <recipients|templates|routes> set'],
      [['templates'], 'herald -- <recipients|templates|routes> list'],
      [['routes', 'get'], 'herald -- <recipients|templates|routes> get'],
      [['alarm-events', 'send'], 'herald -- alarm-events send'],
      [['alarms', 'shelve'], 'herald -- alarms shelve'],
      [['rules', 'set'], 'herald -- rules set'],
    ]
    const runs = await Promise.all(
      verbs.flatMap(([args]) => [herald([...args, '--help']), herald([...args, '-h'])]),
    )
    verbs.forEach(([args, shown], i) => {
      for (const run of [runs[2 * i], runs[2 * i + 1]]) {
        assert.equal(run?.code, 0, args.join(' '))
        assert.ok(run?.stdout.includes(shown), `${args.join(' ')} --help shows ${shown}: ${run?.stdout}`)
        assert.match(run?.stdout ?? '', /--json/, `${args.join(' ')} --help names --json`)
        assert.match(run?.stdout ?? '', /exit codes: 0 /, `${args.join(' ')} --help names its exit codes`)
        assert.equal(run?.stderr, '')
      }
    })
    const all = await herald(['--help'])
    assert.equal(all.code, 0)
    for (const [, shown] of verbs) assert.ok(all.stdout.includes(shown), shown)
    assert.equal((await herald(['help', 'lag'])).stdout, runs[4]?.stdout)
    const unknown = await herald(['fax', '--help'])
    assert.equal(unknown.code, 2)
    assert.match(unknown.stderr, /no verb fax/)
  })
})
