// `npm run herald -- rules ...` as an operator runs it: a child process talking to a real api (real Kafka)
// through HERALD_URL and HERALD_API_KEY; `rules import --from` reads the alerts engine stand-in. The rules
// service is not running: the tests look at what the api holds and what is on the rules topic.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { loadConfig } from '@herald/shared/config'
import { createLogger } from '@herald/shared/logger'
import { rulesTopicName } from '@herald/shared/rules/topics'
import type { Admin } from 'kafkajs'
import { type RunningApi, startApi } from '../../api/src/server.ts'
import { type AlertsEngineStandIn, startAlertsEngineStandIn } from '../../dev/standins/alerts-engine.ts'
import { kafkaBrokers, redisUrl, requireServers } from '../../test/helpers.ts'
import { readConfigRecords } from '../../test/support/config-records.ts'
import { deleteNamespace, namespace, testKafka } from '../../test/support/fixtures.ts'
import { eventually } from '../../test/support/service-process.ts'

const ns = namespace('cli-rules')
const cli = join(import.meta.dirname, '../src/cli.ts')
const dir = mkdtempSync(join(tmpdir(), 'herald-cli-rules-'))
let api: RunningApi
let admin: Admin
let engine: AlertsEngineStandIn

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
  engine = await startAlertsEngineStandIn({ port: 0, quiet: true, faults: {} })
})

after(async () => {
  await engine?.close()
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

const lines = (text: string) => text.trim().split('\n')

describe('herald rules set|get|delete', () => {
  test('set from flags; get prints the rule with who wrote it as JSON', async () => {
    const set = await herald([
      'rules',
      'set',
      'disk',
      '--query',
      'max(disk_used_ratio)',
      '--interval',
      '30s',
      '--repeat',
      '10m',
      '--sustain',
      '2m',
      '--warn',
      '0.8:disk over 80%',
      '--critical',
      '0.9:disk over 90%: act now',
      '--label',
      'team=storage',
    ])
    assert.equal(set.code, 0, set.stderr)
    assert.equal(set.stdout.trim(), 'created rule disk')
    const got = await herald(['rules', 'get', 'disk', '--json'], { key: 'other' })
    assert.equal(got.code, 0, got.stderr)
    const view = JSON.parse(got.stdout)
    assert.deepEqual(view.rule, {
      name: 'disk',
      source: 'prometheus',
      query: 'max(disk_used_ratio)',
      intervalSecs: 30,
      repeatIntervalSecs: 600,
      sustainSecs: 120,
      comparison: 'above',
      warn: { value: 0.8, message: 'disk over 80%' },
      critical: { value: 0.9, message: 'disk over 90%: act now' },
      labels: { team: 'storage' },
    })
    assert.deepEqual([view.audit.user, view.audit.source], ['ops', 'api'])
  })

  test('set reads JSON from a file or stdin, and flags win over it; --json prints the rule', async () => {
    const rule = {
      query: 'node_load1',
      intervalSecs: 60,
      repeatIntervalSecs: 300,
      comparison: 'below',
      warn: { value: 10, message: 'load low' },
      labels: { team: 'compute' },
    }
    writeFileSync(join(dir, 'load.json'), JSON.stringify(rule))
    const fromFile = await herald([
      'rules',
      'set',
      'load',
      '--file',
      'load.json',
      '--interval',
      '2m',
      '--json',
    ])
    assert.equal(fromFile.code, 0, fromFile.stderr)
    assert.deepEqual(JSON.parse(fromFile.stdout), {
      name: 'load',
      source: 'prometheus',
      ...rule,
      intervalSecs: 120,
    })
    const fromStdin = await herald(
      ['rules', 'set', 'load', '--file', '-', '--source', 'alerts-engine', '--label', 'tier=1'],
      { stdin: JSON.stringify(rule) },
    )
    assert.equal(fromStdin.code, 0, fromStdin.stderr)
    assert.equal(fromStdin.stdout.trim(), 'replaced rule load')
    const got = JSON.parse((await herald(['rules', 'get', 'load'])).stdout)
    assert.deepEqual([got.rule.source, got.rule.labels], ['alerts-engine', { team: 'compute', tier: '1' }])
  })

  test('delete writes a tombstone; a refusal exits 1 with the status, the field and the reason; bad usage exits 2', async () => {
    assert.equal((await herald(['rules', 'set', 'temp', '--file', 'load.json'])).code, 0)
    const deleted = await herald(['rules', 'delete', 'temp', '--json'])
    assert.equal(deleted.code, 0, deleted.stderr)
    assert.deepEqual(JSON.parse(deleted.stdout), { deleted: 'temp' })
    const again = await herald(['rules', 'delete', 'temp'])
    assert.equal(again.code, 1)
    assert.match(again.stderr, /^404 not_found: no rule "temp"/)
    const tombstone = (await readConfigRecords(testKafka(kafkaBrokers()), rulesTopicName(ns.prefix)))
      .filter((r) => r.key === 'temp')
      .at(-1)
    assert.equal(tombstone?.value, null)
    assert.deepEqual([tombstone?.headers['herald-user'], tombstone?.headers['herald-source']], ['ops', 'api'])

    const invalid = await herald(['rules', 'set', 'bad', '--query', 'up', '--interval', '0', '--warn', '1:x'])
    assert.equal(invalid.code, 1)
    assert.match(invalid.stderr, /^400 invalid_request/)
    assert.match(invalid.stderr, /\n {2}intervalSecs: must be at least 1/)
    assert.match(invalid.stderr, /\n {2}repeatIntervalSecs: /)
    const sender = await herald(['rules', 'set', 'disk', '--interval', '1m'], { key: 'other' })
    assert.equal(sender.code, 1)
    assert.match(sender.stderr, /^403 forbidden/)
    const reserved = await herald(['rules', 'get', 'herald.x'])
    assert.equal(reserved.code, 1)
    assert.match(reserved.stderr, /name: must not start with "herald\."/)

    for (const args of [
      ['rules', 'set', 'disk', '--warn', '0.8'],
      ['rules', 'set', 'disk', '--critical', 'high:x'],
      ['rules', 'set', 'disk', '--interval', 'soon'],
      ['rules', 'set', 'disk', '--file', 'missing.json'],
      ['rules', 'set', 'disk', '--from', engine.url],
      ['rules', 'get'],
      ['rules', 'list', 'disk'],
      ['rules', 'list', '--limit', '0'],
      ['rules', 'frobnicate', 'disk'],
      ['rules', 'get', 'disk', '--colour', 'red'],
      ['rules', 'import'],
      ['rules', 'import', '--file', 'x.json', '--from', engine.url],
    ]) {
      const usage = await herald(args)
      assert.equal(usage.code, 2, `${args.join(' ')}: ${usage.stderr}`)
    }
  })
})

describe('herald rules list', () => {
  test('one line per rule with its alarm state; --json the items; --source and --limit', async () => {
    const text = await herald(['rules', 'list'], { key: 'other' })
    assert.equal(text.code, 0, text.stderr)
    assert.deepEqual(lines(text.stdout), [
      'disk\tprometheus\tevery 30s\tabove warn 0.8 critical 0.9\tnormal',
      'load\talerts-engine\tevery 60s\tbelow warn 10\tnormal',
      '2 rules',
    ])
    const engineRules = await herald(['rules', 'list', '--source', 'alerts-engine', '--json'])
    assert.deepEqual(
      (JSON.parse(engineRules.stdout) as Array<{ name: string }>).map((r) => r.name),
      ['load'],
    )
    const one = await herald(['rules', 'list', '--limit', '1', '--json'])
    assert.deepEqual(
      (JSON.parse(one.stdout) as Array<{ name: string }>).map((r) => r.name),
      ['disk'],
    )
    const bad = await herald(['rules', 'list', '--source', 'graphite'])
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /source: must be one of prometheus, alerts-engine/)
  })
})

describe('herald rules import', () => {
  const alerts = [
    {
      name: 'imp-cpu',
      query: 'cpu',
      intervalSecs: 10,
      repeatIntervalSecs: 60,
      warn: { value: 0.5, message: 'cpu high' },
      critical: { value: 0.9, message: 'cpu critical' },
    },
    {
      name: 'imp-mem',
      query: 'mem',
      intervalSecs: 10,
      repeatIntervalSecs: 60,
      sustainSecs: 30,
      critical: null,
      warn: { value: 0, message: 'mem' },
    },
  ]

  test('a file in the engine shape: every valid alert becomes an alerts-engine rule, the refused ones are named and exit 1', async () => {
    const withBad = [
      ...alerts,
      {
        name: 'imp-bad',
        query: 'x',
        intervalSecs: 'often',
        repeatIntervalSecs: 60,
        warn: { value: 1, message: 'x' },
      },
      {
        name: 'imp-cpu',
        query: 'again',
        intervalSecs: 10,
        repeatIntervalSecs: 60,
        warn: { value: 1, message: 'x' },
      },
    ]
    writeFileSync(join(dir, 'alerts.json'), JSON.stringify(withBad))
    const imported = await herald(['rules', 'import', '--file', 'alerts.json'])
    assert.equal(imported.code, 1, 'exit 1: some were refused')
    assert.deepEqual(lines(imported.stdout), [
      'created rule imp-cpu',
      'created rule imp-mem',
      '2 imported, 2 refused',
    ])
    assert.match(
      imported.stderr,
      /refused alert #2 \(imp-bad\)\n {2}intervalSecs: must be a number of seconds/,
    )
    assert.match(
      imported.stderr,
      /refused alert #3 \(imp-cpu\)\n {2}name: repeats the name of an earlier alert/,
    )
    const cpu = JSON.parse((await herald(['rules', 'get', 'imp-cpu'])).stdout).rule
    assert.deepEqual(cpu, { ...alerts[0], source: 'alerts-engine', comparison: 'above' })
    const mem = JSON.parse((await herald(['rules', 'get', 'imp-mem'])).stdout).rule
    assert.deepEqual(
      [mem.sustainSecs, mem.warn, mem.critical],
      [30, { value: 0, message: 'mem' }, undefined],
      'null is no threshold; 0 is a value',
    )

    const again = await herald(['rules', 'import', '--file', '-', '--json'], {
      stdin: JSON.stringify({ alerts }),
    })
    assert.equal(again.code, 0, again.stderr)
    assert.deepEqual(JSON.parse(again.stdout), {
      imported: [
        { name: 'imp-cpu', status: 'replaced' },
        { name: 'imp-mem', status: 'replaced' },
      ],
      refused: [],
      notWritten: [],
    })
    const notAList = await herald(['rules', 'import', '--file', '-'], { stdin: '{"rules": []}' })
    assert.equal(notAList.code, 1)
    assert.match(notAList.stderr, /must answer a JSON list of alerts/)
    const sender = await herald(['rules', 'import', '--file', 'alerts.json'], { key: 'other' })
    assert.equal(sender.code, 1)
    assert.match(sender.stderr, /rule imp-cpu: 403 forbidden/)
  })

  test("--from reads the engine's GET /alerts, through its 500s", async () => {
    engine.setAlerts([{ ...alerts[0], name: 'eng-disk', query: 'disk' }])
    engine.setFaults({ failNext: 2 })
    const imported = await herald(['rules', 'import', '--from', engine.url])
    assert.equal(imported.code, 0, imported.stderr)
    assert.deepEqual(lines(imported.stdout), ['created rule eng-disk', '1 imported, 0 refused'])
    assert.match(imported.stderr, /: 500 .*\(attempt 1 of 4; retrying\)/)
    assert.equal(engine.stats().requests.alerts, 3)
    const got = JSON.parse((await herald(['rules', 'get', 'eng-disk'])).stdout).rule
    assert.deepEqual([got.source, got.query], ['alerts-engine', 'disk'])

    engine.setFaults({ failNext: 10 })
    const down = await herald(['rules', 'import', '--from', engine.url])
    assert.equal(down.code, 1)
    assert.match(down.stderr, /attempt 3 of 4; retrying\)\nGET .*\/alerts: 500/)
    engine.setFaults({})
  })
})
