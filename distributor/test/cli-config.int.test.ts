// `npm run herald -- recipients|templates|routes|alarm-events ...` as an operator runs it: a child process talking to a
// real api (real Kafka) through HERALD_URL and HERALD_API_KEY.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { loadConfig } from '@herald/shared/config'
import { createLogger } from '@herald/shared/logger'
import { alarmEventTopicName } from '@herald/shared/topics'
import type { Admin } from 'kafkajs'
import { type RunningApi, startApi } from '../../api/src/server.ts'
import { kafkaBrokers, redisUrl, requireServers } from '../../test/helpers.ts'
import { monascaEvent } from '../../test/support/alarm-events.ts'
import { readConfigRecords } from '../../test/support/config-records.ts'
import { deleteNamespace, namespace, testKafka } from '../../test/support/fixtures.ts'
import { eventually } from '../../test/support/service-process.ts'

const ns = namespace('cli-config')
const cli = join(import.meta.dirname, '../src/cli.ts')
const dir = mkdtempSync(join(tmpdir(), 'herald-cli-'))
let api: RunningApi
let admin: Admin

before(async () => {
  await requireServers()
  const config = loadConfig(
    {
      KAFKA_BROKERS: kafkaBrokers(),
      REDIS_URL: redisUrl(),
      PORT: '0',
      TOPIC_PREFIX: ns.prefix,
      KEY_PREFIX: ns.prefix,
      TOPIC_PARTITIONS: '2',
      API_KEYS: 'ops:s3cret:admin,ci:other',
    },
    'api',
  )
  api = await startApi(config, createLogger({ service: 'api', level: 'silent' }))
  await eventually('the api is ready', async () =>
    (await fetch(`${api.url}/readyz`)).status === 200 ? true : undefined,
  )
  admin = testKafka(kafkaBrokers()).admin()
  await admin.connect()
})

after(async () => {
  await api?.stop()
  await deleteNamespace(admin, undefined, ns)
  await admin?.disconnect()
  rmSync(dir, { recursive: true, force: true })
})

function herald(args: string[], options: { key?: string; stdin?: string } = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const child = execFile(
      process.execPath,
      [cli, ...args],
      {
        env: {
          PATH: process.env.PATH ?? '',
          HERALD_URL: api.url,
          HERALD_API_KEY: options.key ?? 's3cret',
        },
        cwd: dir,
      },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    )
    child.stdin?.end(options.stdin ?? '')
  })
}

describe('herald recipients|templates|routes', () => {
  test('set from flags creates a recipient, and get prints it as JSON', async () => {
    const set = await herald([
      'recipients',
      'set',
      'ada',
      '--name',
      'Ada',
      '--email',
      'ada@example.com',
      '--channels',
      'email',
    ])
    assert.equal(set.code, 0, set.stderr)
    assert.equal(set.stdout.trim(), 'created recipient ada')
    const got = await herald(['recipients', 'get', 'ada', '--json'])
    assert.equal(got.code, 0, got.stderr)
    assert.deepEqual(JSON.parse(got.stdout), {
      id: 'ada',
      name: 'Ada',
      email: 'ada@example.com',
      channels: ['email'],
    })
  })

  test('set reads JSON from a file or stdin, and flags win over the file', async () => {
    writeFileSync(
      join(dir, 'grace.json'),
      JSON.stringify({ name: 'Grace', phone: '+14155550100', channels: ['sms'] }),
    )
    const fromFile = await herald([
      'recipients',
      'set',
      'grace',
      '--file',
      'grace.json',
      '--name',
      'Grace H.',
    ])
    assert.equal(fromFile.code, 0, fromFile.stderr)
    const template = JSON.stringify({ channel: 'sms', body: '[{{newState}}] {{alarmName}}' })
    const fromStdin = await herald(['templates', 'set', 'pager', '--file', '-'], { stdin: template })
    assert.equal(fromStdin.code, 0, fromStdin.stderr)
    const route = await herald([
      'routes',
      'set',
      'disk',
      '--alarm-definition-id',
      'D',
      '--states',
      'alarm,ok',
      '--label',
      'team=storage',
      '--recipients',
      'ada,grace',
      '--template',
      'pager',
      '--period',
      '300',
      '--json',
    ])
    assert.equal(route.code, 0, route.stderr)
    assert.deepEqual(JSON.parse(route.stdout), {
      name: 'disk',
      match: { alarmDefinitionId: 'D', states: ['ALARM', 'OK'], labels: { team: 'storage' } },
      recipients: ['ada', 'grace'],
      template: 'pager',
      periodSeconds: 300,
    })
    assert.equal(JSON.parse((await herald(['recipients', 'get', 'grace'])).stdout).name, 'Grace H.')
  })

  test('list prints one line per entry, JSON with --json, and at most --limit entries', async () => {
    const text = await herald(['recipients', 'list'])
    assert.equal(text.code, 0, text.stderr)
    assert.deepEqual(text.stdout.trim().split('\n'), [
      'ada\tAda\temail',
      'grace\tGrace H.\tsms',
      '2 recipients',
    ])
    const json = await herald(['routes', 'list', '--json'])
    assert.deepEqual(
      (JSON.parse(json.stdout) as Array<{ name: string }>).map((r) => r.name),
      ['disk'],
    )
    const limited = await herald(['recipients', 'list', '--limit', '1', '--json'])
    assert.deepEqual(
      (JSON.parse(limited.stdout) as Array<{ id: string }>).map((r) => r.id),
      ['ada'],
    )
  })

  test('a refused write exits 1 and prints each field and reason', async () => {
    const bad = await herald([
      'recipients',
      'set',
      'bob',
      '--name',
      'Bob',
      '--slack',
      'https://hooks.slack.com/x',
      '--channels',
      'slack',
    ])
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /^400 invalid_request/)
    assert.match(bad.stderr, /slack: must name a configured Slack destination/)
    const sender = await herald(['recipients', 'delete', 'ada'], { key: 'other' })
    assert.equal(sender.code, 1)
    assert.match(sender.stderr, /^403 forbidden/)
  })

  test('delete removes a route (--json: {"deleted": name}); a missing name exits 1; bad usage exits 2', async () => {
    const deleted = await herald(['routes', 'delete', 'disk'])
    assert.equal(deleted.code, 0, deleted.stderr)
    assert.equal(deleted.stdout.trim(), 'deleted route disk')
    const missing = await herald(['routes', 'get', 'disk'])
    assert.equal(missing.code, 1)
    assert.match(missing.stderr, /^404 not_found/)
    const json = await herald(['templates', 'delete', 'pager', '--json'])
    assert.equal(json.code, 0, json.stderr)
    assert.deepEqual(JSON.parse(json.stdout), { deleted: 'pager' })
    const gone = await herald(['templates', 'delete', 'pager', '--json'])
    assert.equal(gone.code, 1)
    assert.equal(gone.stdout, '', 'a refusal prints nothing on stdout')
    for (const args of [
      ['routes', 'get'],
      ['routes', 'list', '--colour', 'red'],
      ['routes', 'list', '--limit', '0', '--json'],
      ['routes', 'rename', 'disk'],
    ]) {
      const usage = await herald(args)
      assert.equal(usage.code, 2, `${args.join(' ')}: ${usage.stderr}`)
    }
  })

  test('dlq keeps its usage', async () => {
    const usage = await herald(['dlq', 'list'])
    assert.equal(usage.code, 2)
    assert.match(usage.stderr, /dlq list/)
  })
})

describe('herald alarm-events send', () => {
  /** The events on the namespace's alarm-events topic whose alarm name is `name`. */
  async function eventsNamed(name: string): Promise<Array<Record<string, unknown>>> {
    const records = await readConfigRecords(testKafka(kafkaBrokers()), alarmEventTopicName(ns.prefix))
    return records.filter((r) => r.key === name).map((r) => JSON.parse(r.value ?? 'null'))
  }

  test('flags make one event, posted with a sender key; its id is printed', async () => {
    const sent = await herald(
      [
        'alarm-events',
        'send',
        '--alarm-name',
        'cli disk',
        '--definition-id',
        'D',
        '--state',
        'alarm',
        '--old-state',
        'ok',
        '--severity',
        'HIGH',
        '--reason',
        'disk above 90%',
        '--label',
        'team=storage',
        '--label',
        'env=prod',
        '--link',
        'https://grafana.example.com/d/disk',
        '--timestamp',
        '2025-11-13T02:13:20Z',
      ],
      { key: 'other' },
    )
    assert.equal(sent.code, 0, sent.stderr)
    const id = sent.stdout.trim()
    assert.match(id, /^[\da-f-]{36}$/)
    assert.deepEqual(await eventsNamed('cli disk'), [
      {
        alarmDefinitionId: 'D',
        alarmName: 'cli disk',
        oldState: 'OK',
        newState: 'ALARM',
        stateChangeReason: 'disk above 90%',
        severity: 'HIGH',
        link: 'https://grafana.example.com/d/disk',
        timestamp: 1_763_000_000_000,
        labels: { team: 'storage', env: 'prod' },
        eventId: id,
      },
    ])
  })

  test('a file holds one event or an array, stdin too; one id is printed per event', async () => {
    const batch = [monascaEvent({ alarmName: 'cli file a' }), monascaEvent({ alarmName: 'cli file b' })]
    writeFileSync(join(dir, 'events.json'), JSON.stringify(batch))
    const fromFile = await herald(['alarm-events', 'send', 'events.json'])
    assert.equal(fromFile.code, 0, fromFile.stderr)
    const ids = fromFile.stdout.trim().split('\n')
    assert.equal(ids.length, 2)
    assert.deepEqual(await eventsNamed('cli file a'), [{ ...batch[0], eventId: ids[0] }])
    assert.deepEqual(await eventsNamed('cli file b'), [{ ...batch[1], eventId: ids[1] }])
    const wrapped = JSON.stringify({ 'alarm-transitioned': batch[0] })
    const fromStdin = await herald(['alarm-events', 'send'], { stdin: wrapped })
    assert.equal(fromStdin.code, 0, fromStdin.stderr)
    assert.equal(fromStdin.stdout.trim(), ids[0], 'the same event sent again has the same id')
  })

  test("a refused event exits 1 with the api's error and each field; without --timestamp it is now", async () => {
    const refused = await herald(['alarm-events', 'send', '--alarm-name', 'cli refused', '--state', 'firing'])
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /^400 invalid_request/)
    assert.match(refused.stderr, /newState: must be one of OK, ALARM, UNDETERMINED/)
    const before = Date.now()
    const now = await herald(['alarm-events', 'send', '--alarm-name', 'cli now', '--state', 'OK'])
    assert.equal(now.code, 0, now.stderr)
    const [event] = await eventsNamed('cli now')
    assert.ok(Number(event?.timestamp) >= before && Number(event?.timestamp) <= Date.now())
    assert.equal((await herald(['alarm-events', 'send', 'events.json', '--state', 'OK'])).code, 2)
    assert.equal((await herald(['alarm-events', 'send'], { stdin: '' })).code, 2)
    assert.equal((await herald(['alarm-events', 'send', '--colour', 'red'])).code, 2)
    assert.equal((await herald(['alarm-events', 'send', '--state', 'OK', '--json'])).code, 1, 'no alarm name')
  })

  test("--json prints the api's answer: eventId for one event, eventIds for an array", async () => {
    const one = await herald([
      'alarm-events',
      'send',
      '--alarm-name',
      'cli json',
      '--state',
      'ALARM',
      '--json',
    ])
    assert.equal(one.code, 0, one.stderr)
    const { eventId } = JSON.parse(one.stdout) as { eventId: string }
    assert.match(eventId, /^[\da-f-]{36}$/)
    assert.equal((await eventsNamed('cli json'))[0]?.eventId, eventId)

    const batch = [monascaEvent({ alarmName: 'cli json a' }), monascaEvent({ alarmName: 'cli json b' })]
    const many = await herald(['alarm-events', 'send', '-', '--json'], { stdin: JSON.stringify(batch) })
    assert.equal(many.code, 0, many.stderr)
    const { eventIds } = JSON.parse(many.stdout) as { eventIds: string[] }
    assert.equal(eventIds.length, 2)
    assert.equal((await eventsNamed('cli json b'))[0]?.eventId, eventIds[1])
  })
})
