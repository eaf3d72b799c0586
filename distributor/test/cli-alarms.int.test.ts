// `npm run herald -- alarms ...` as an operator runs it: a child process talking to a real api (real Kafka)
// through HERALD_URL and HERALD_API_KEY. The alarms processor is not running: the effective states the list
// shows are written by the test, as the processor would write them.
import assert from 'node:assert/strict'
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { AlarmPartitioner } from '@herald/shared/alarms/partitioner'
import type { Effective } from '@herald/shared/alarms/schemas'
import { loadConfig } from '@herald/shared/config'
import { createLogger } from '@herald/shared/logger'
import { alarmTopicNames } from '@herald/shared/topics'
import type { Admin, Producer } from 'kafkajs'
import { type RunningApi, startApi } from '../../api/src/server.ts'
import { kafkaBrokers, redisUrl, requireServers } from '../../test/helpers.ts'
import { deleteNamespace, namespace, testKafka } from '../../test/support/fixtures.ts'
import { eventually } from '../../test/support/service-process.ts'

const ns = namespace('cli-alarms')
const topics = alarmTopicNames(ns.prefix)
const cli = join(import.meta.dirname, '../src/cli.ts')
const dir = mkdtempSync(join(tmpdir(), 'herald-cli-alarms-'))
let api: RunningApi
let admin: Admin
let processor: Producer
const monitors: ChildProcess[] = []

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
  const kafka = testKafka(kafkaBrokers())
  admin = kafka.admin()
  await admin.connect()
  processor = kafka.producer({ allowAutoTopicCreation: false, createPartitioner: AlarmPartitioner })
  await processor.connect()
})

after(async () => {
  for (const child of monitors)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  await processor?.disconnect()
  await api?.stop()
  await deleteNamespace(admin, undefined, ns)
  await admin?.disconnect()
  rmSync(dir, { recursive: true, force: true })
})

const env = (key: string) => ({ PATH: process.env.PATH ?? '', HERALD_URL: api.url, HERALD_API_KEY: key })

function herald(args: string[], options: { key?: string; stdin?: string } = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const child = execFile(
      process.execPath,
      [cli, ...args],
      { env: env(options.key ?? 's3cret'), cwd: dir },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    )
    child.stdin?.end(options.stdin ?? '')
  })
}

/** Writes an effective state as the alarms processor would, with its audit headers. */
async function publishEffective(name: string, state: Effective['state'], since: number): Promise<void> {
  const effective: Effective = {
    name,
    state,
    active: state === 'active',
    effectivelyActive: state === 'active',
    severity: 'HIGH',
    overrides: [],
    since,
  }
  await processor.send({
    topic: topics.effective,
    acks: -1,
    messages: [
      {
        key: name,
        value: JSON.stringify(effective),
        headers: { 'herald-user': 'ops', 'herald-source': 'alarms', 'herald-host': 'processor-1' },
      },
    ],
  })
}

/** Waits until the api shows `name` in `state` (it reads the effective topic in the background). */
async function shown(name: string, state: string): Promise<void> {
  await eventually(`the api shows ${name} ${state}`, async () => {
    const res = await fetch(`${api.url}/api/v1/alarms/${name}`, {
      headers: { authorization: 'Bearer other' },
    })
    const body = (await res.json()) as { effective: { state: string } | null }
    return body.effective?.state === state ? true : undefined
  })
}

describe('herald alarms register|get', () => {
  test('register from flags; get prints the alarm as JSON', async () => {
    const registered = await herald([
      'alarms',
      'register',
      'disk',
      '--severity',
      'high',
      '--latching',
      '--max-shelve',
      '1h',
      '--on-delay',
      '30s',
      '--repeat',
      '10m',
      '--label',
      'team=storage',
      '--doc-url',
      'https://runbooks.example.com/disk',
    ])
    assert.equal(registered.code, 0, registered.stderr)
    assert.equal(registered.stdout.trim(), 'registered alarm disk')
    const got = await herald(['alarms', 'get', 'disk', '--json'])
    assert.equal(got.code, 0, got.stderr)
    assert.deepEqual(JSON.parse(got.stdout).registration, {
      name: 'disk',
      severity: 'HIGH',
      latching: true,
      maxShelveSeconds: 3600,
      onDelaySeconds: 30,
      repeatSeconds: 600,
      labels: { team: 'storage' },
      docUrl: 'https://runbooks.example.com/disk',
    })
  })

  test('register reads JSON from a file or stdin, and flags win over it', async () => {
    writeFileSync(
      join(dir, 'fan.json'),
      JSON.stringify({ class: 'cooling', severity: 'LOW', labels: { team: 'dc' } }),
    )
    const fromFile = await herald([
      'alarms',
      'register',
      'fan',
      '--file',
      'fan.json',
      '--severity',
      'critical',
      '--json',
    ])
    assert.equal(fromFile.code, 0, fromFile.stderr)
    assert.deepEqual(JSON.parse(fromFile.stdout), {
      name: 'fan',
      class: 'cooling',
      severity: 'CRITICAL',
      latching: false,
      labels: { team: 'dc' },
    })
    const fromStdin = await herald(['alarms', 'register', 'fan', '--file', '-', '--no-latching'], {
      stdin: JSON.stringify({ class: 'cooling', latching: true }),
    })
    assert.equal(fromStdin.code, 0, fromStdin.stderr)
    assert.equal(fromStdin.stdout.trim(), 'replaced alarm fan')
    assert.equal(JSON.parse((await herald(['alarms', 'get', 'fan'])).stdout).registration.latching, false)
  })
})

describe('herald alarms activate|clear|ack|shelve|unshelve|disable|enable', () => {
  test('each prints what it did; --json prints the record written', async () => {
    const activated = await herald([
      'alarms',
      'activate',
      'disk',
      '--severity',
      'high',
      '--message',
      '97%',
      '--value',
      '97',
    ])
    assert.equal(activated.code, 0, activated.stderr)
    assert.match(activated.stdout.trim(), /^activated disk \(active since \d{4}-\d\d-\d\dT[\d:.]+Z\)$/)
    const update = await herald(['alarms', 'activate', 'disk', '--source', 'cli-test', '--json'])
    assert.equal(update.code, 0, update.stderr)
    const written = JSON.parse(update.stdout)
    assert.deepEqual([written.action, written.key, written.value.source], ['activate', 'disk', 'cli-test'])
    assert.equal(
      new Date(written.value.at).toISOString(),
      /since (\S+)\)/.exec(activated.stdout)?.[1],
      'at kept',
    )
    assert.equal((await herald(['alarms', 'clear', 'disk'])).stdout.trim(), 'cleared disk')

    const shelved = await herald(['alarms', 'shelve', 'disk', '--for', '30m', '--reason', 'disk swap'])
    assert.equal(shelved.code, 0, shelved.stderr)
    assert.match(shelved.stdout.trim(), /^shelved disk until \d{4}-\d\d-\d\dT[\d:.]+Z$/)
    const overrides = JSON.parse((await herald(['alarms', 'get', 'disk'])).stdout).overrides
    assert.deepEqual([overrides.shelved.reason, overrides.shelved.user], ['disk swap', 'ops'])
    assert.equal((await herald(['alarms', 'unshelve', 'disk'])).stdout.trim(), 'unshelved disk')
    const oneshot = await herald(['alarms', 'shelve', 'fan', '--oneshot', '--reason', 'until it clears'])
    assert.equal(oneshot.stdout.trim(), 'shelved fan until it clears')

    assert.equal(
      (await herald(['alarms', 'disable', 'disk', '--reason', 'replaced'])).stdout.trim(),
      'disabled disk',
    )
    assert.equal((await herald(['alarms', 'enable', 'disk'])).stdout.trim(), 'enabled disk')
  })

  test('a refusal exits 1 with the status, the field and the reason; bad usage exits 2', async () => {
    const tooLong = await herald(['alarms', 'shelve', 'disk', '--for', '2h', '--reason', 'long job'])
    assert.equal(tooLong.code, 1)
    assert.match(tooLong.stderr, /^400 invalid_request/)
    assert.match(tooLong.stderr, /\n {2}for: must be at most 3600 seconds from now/)
    const nothing = await herald(['alarms', 'ack', 'disk'])
    assert.equal(nothing.code, 1)
    assert.match(nothing.stderr, /^409 conflict: alarm "disk" is not latched: nothing to acknowledge/)
    const sender = await herald(['alarms', 'activate', 'disk'], { key: 'other' })
    assert.equal(sender.code, 1)
    assert.match(sender.stderr, /^403 forbidden/)
    const unknown = await herald(['alarms', 'clear', 'nope'])
    assert.equal(unknown.code, 1)
    assert.match(unknown.stderr, /^404 not_found: no alarm "nope"/)

    for (const args of [
      ['alarms', 'shelve', 'disk', '--for', '30m'],
      ['alarms', 'shelve', 'disk', '--for', 'half an hour', '--reason', 'x'],
      ['alarms', 'disable', 'disk'],
      ['alarms', 'activate'],
      ['alarms', 'activate', 'disk', '--value', 'high'],
      ['alarms', 'frobnicate', 'disk'],
      ['alarms', 'get', 'disk', '--colour', 'red'],
      ['alarms', 'clear', 'disk', '--monitor'],
    ]) {
      const usage = await herald(args)
      assert.equal(usage.code, 2, `${args.join(' ')}: ${usage.stderr}`)
    }
  })
})

describe('herald alarms list', () => {
  test('one line per alarm with its effective state; --json the items; --state and --label filter', async () => {
    await publishEffective('disk', 'active', 1_763_000_000_000)
    await publishEffective('fan', 'normal', 1_763_000_000_000)
    await shown('fan', 'normal')
    await shown('disk', 'active')
    const text = await herald(['alarms', 'list'])
    assert.equal(text.code, 0, text.stderr)
    assert.deepEqual(text.stdout.trim().split('\n'), [
      'disk\tactive\tHIGH\t2025-11-13T02:13:20.000Z\t-',
      'fan\tnormal\tHIGH\t2025-11-13T02:13:20.000Z\t-',
      '2 alarms',
    ])
    const active = await herald(['alarms', 'list', '--state', 'active', '--json'])
    assert.deepEqual(
      (JSON.parse(active.stdout) as Array<{ name: string }>).map((a) => a.name),
      ['disk'],
    )
    const storage = await herald(['alarms', 'list', '--label', 'team=storage', '--json'])
    assert.deepEqual(
      (JSON.parse(storage.stdout) as Array<{ name: string }>).map((a) => a.name),
      ['disk'],
    )
    const bad = await herald(['alarms', 'list', '--state', 'firing'])
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /state: unknown state "firing"/)
  })

  test('--monitor prints a line per change (time | user | source | host | name = state) until interrupted', async () => {
    const child = spawn(process.execPath, [cli, 'alarms', 'list', '--monitor'], {
      env: env('other'),
      cwd: dir,
    })
    monitors.push(child)
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8')
    })
    const lines = () => out.split('\n').filter(Boolean)
    const disk = (state: string) => (line: string) => line.endsWith(`| disk = ${state}`)

    await eventually('the current states', () => (lines().length >= 2 ? true : undefined))
    assert.deepEqual(lines(), [
      '2025-11-13T02:13:20.000Z | ops | alarms | processor-1 | disk = active',
      '2025-11-13T02:13:20.000Z | ops | alarms | processor-1 | fan = normal',
    ])
    await publishEffective('disk', 'normal', 1_763_000_060_000)
    await eventually('the change of disk', () => (lines().some(disk('normal')) ? true : undefined))
    assert.equal(lines().filter(disk('active')).length, 1, 'an unchanged state is not printed again')
    assert.equal(lines().at(-1), '2025-11-13T02:14:20.000Z | ops | alarms | processor-1 | disk = normal')

    assert.equal((await herald(['alarms', 'unregister', 'fan'])).stdout.trim(), 'unregistered alarm fan')
    await eventually('fan gone', () =>
      lines().some((l) => l.endsWith('| fan = (unregistered)')) ? true : undefined,
    )

    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    child.kill('SIGINT')
    assert.equal(await exited, 0, 'Ctrl-C ends the monitor cleanly')
  })

  test('--monitor --json prints a JSON object per change, the unregistered alarm marked', async () => {
    const registered = await herald(['alarms', 'register', 'pump', '--severity', 'high', '--json'])
    assert.equal(registered.code, 0, registered.stderr)
    await publishEffective('pump', 'active', 1_763_000_200_000)
    await shown('pump', 'active')
    const child = spawn(process.execPath, [cli, 'alarms', 'list', '--monitor', '--json'], {
      env: env('other'),
      cwd: dir,
    })
    monitors.push(child)
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8')
    })
    const changes = () =>
      out
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>)
    const of = (name: string) => changes().filter((c) => c.name === name)

    await eventually('the current states', () =>
      of('pump').length > 0 && of('disk').length > 0 ? true : undefined,
    )
    assert.deepEqual(of('pump'), [
      {
        time: '2025-11-13T02:16:40.000Z',
        name: 'pump',
        state: 'active',
        user: 'ops',
        source: 'alarms',
        host: 'processor-1',
      },
    ])
    assert.deepEqual(
      of('disk').map((c) => c.state),
      ['normal'],
    )

    assert.equal(
      (await herald(['alarms', 'unregister', 'pump', '--json'])).stdout.trim(),
      '{"unregistered":"pump"}',
    )
    await eventually('pump gone', () => (of('pump').length === 2 ? true : undefined))
    const gone = of('pump')[1]
    assert.ok(!Number.isNaN(Date.parse(String(gone?.time))), `a time: ${JSON.stringify(gone)}`)
    assert.deepEqual(
      { ...gone, time: 'now' },
      { time: 'now', name: 'pump', state: null, user: null, source: null, host: null, unregistered: true },
    )

    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    child.kill('SIGINT')
    assert.equal(await exited, 0, 'Ctrl-C ends the monitor cleanly')
    assert.equal(
      (await herald(['alarms', 'list', '--monitor', '--limit', '5'])).code,
      2,
      '--monitor has no --limit',
    )
  })
})
