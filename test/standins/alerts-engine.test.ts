import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, beforeEach, test } from 'node:test'
import { rulesFromEngine } from '@herald/shared/rules/schemas'
import {
  type AlertsEngineStandIn,
  defaultEngineFailRate,
  type EngineCall,
  parseEngineFaults,
  startAlertsEngineStandIn,
} from '../../dev/standins/alerts-engine.ts'
import { startSandbox } from '../../dev/standins/index.ts'
import { garbage, talkRaw } from './raw-socket.ts'

const repoRoot = join(import.meta.dirname, '..', '..')
const t0 = 1_763_000_000_000
let clock = t0
let engine: AlertsEngineStandIn
const dirs: string[] = []

const alert = {
  name: 'alert-1',
  query: 'test-query-1',
  intervalSecs: 5,
  repeatIntervalSecs: 30,
  warn: { value: 50, message: 'above 50' },
  critical: { value: 100, message: 'above 100' },
}

const get = (path: string) => fetch(`${engine.url}${path}`)
const send = (method: string, path: string, body: unknown) =>
  fetch(`${engine.url}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
const query = async (target: string) => {
  const response = await get(`/query?target=${encodeURIComponent(target)}`)
  return { status: response.status, body: (await response.json()) as { value?: number; error?: string } }
}

before(async () => {
  engine = await startAlertsEngineStandIn({
    port: 0,
    quiet: true,
    alerts: [alert],
    now: () => clock,
    faults: {},
  })
})
beforeEach(() => {
  clock = t0
  engine.setFaults({})
  engine.clearCalls()
  engine.clearValues()
  engine.setAlerts([alert])
})
after(async () => {
  await engine.close()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

test('GET /alerts answers the engine alerts, which Herald imports as rules', async () => {
  const response = await get('/alerts')
  assert.equal(response.status, 200)
  const body = await response.json()
  assert.deepEqual(body, [alert])
  const imported = rulesFromEngine(body)
  assert.ok(imported.ok)
  assert.deepEqual(
    imported.rules.map((r) => [r.name, r.source]),
    [['alert-1', 'alerts-engine']],
  )
})

test('the alerts are set through /_standin/alerts, as a list or {"alerts": [...]}; anything else is a 400', async () => {
  const other = { ...alert, name: 'alert-2' }
  assert.equal((await send('PUT', '/_standin/alerts', { alerts: [other] })).status, 200)
  assert.deepEqual(await (await get('/alerts')).json(), [other])
  assert.deepEqual(await (await get('/_standin/alerts')).json(), [other])
  const bad = await send('PUT', '/_standin/alerts', [other, 'x'])
  assert.equal(bad.status, 400)
  assert.deepEqual(await bad.json(), { error: 'bad_request', message: 'alerts[1] must be a JSON object' })
  assert.equal((await send('PUT', '/_standin/alerts', '{"alerts":')).status, 400)
  assert.deepEqual(engine.alerts(), [other], 'a refused PUT changes nothing')
})

test('a value scripted as a constant is answered as {"value": float}, 0 included', async () => {
  engine.setValues({ 'test-query-1': 0, other: 42.5 })
  assert.deepEqual(await query('test-query-1'), { status: 200, body: { value: 0 } })
  assert.deepEqual(await query('other'), { status: 200, body: { value: 42.5 } })
})

test('steps over time: each value holds from its time to the next; none before the first; null fails', async () => {
  const put = await send('PUT', '/_standin/values', {
    'test-query-1': [
      { after: 10, value: 60 },
      { after: 0, value: 10 },
      { at: t0 + 20_000, value: 150 },
      { after: 30, value: null },
      { after: 40, value: 0 },
    ],
  })
  assert.equal(put.status, 200)
  clock = t0 - 1
  assert.equal((await query('test-query-1')).status, 404, 'before the first step')
  const seen: Array<number | string | undefined> = []
  for (const second of [0, 9, 10, 19, 20, 29, 30, 39, 40, 1000]) {
    clock = t0 + second * 1000
    const answer = await query('test-query-1')
    seen.push(answer.status === 200 ? answer.body.value : answer.status)
  }
  assert.deepEqual(seen, [10, 10, 60, 60, 150, 150, 500, 500, 0, 0])
  assert.equal(engine.valueAt('test-query-1', t0 + 25_000), 150)
})

test('PUT /_standin/values merges by query; DELETE clears; bad scripts are 400s naming the step', async () => {
  await send('PUT', '/_standin/values', { a: 1 })
  await send('PUT', '/_standin/values', { b: 2 })
  assert.deepEqual(Object.keys((await (await get('/_standin/values')).json()) as object), ['a', 'b'])
  const cases: Array<[unknown, RegExp]> = [
    [{ a: 'high' }, /values\["a"\]\.value must be a finite number/],
    [{ a: [{ value: 1 }] }, /values\["a"\]\[0\] needs exactly one of after .* or at/],
    [{ a: [{ after: -1, value: 1 }] }, /values\["a"\]\[0\]\.after must be seconds >= 0/],
    [{ a: [{ at: 1, after: 1, value: 1 }] }, /needs exactly one of/],
    [[1], /values must be a JSON object/],
  ]
  for (const [body, message] of cases) {
    const response = await send('PUT', '/_standin/values', body)
    assert.equal(response.status, 400)
    assert.match(((await response.json()) as { message: string }).message, message)
  }
  assert.equal(engine.valueAt('a'), 1, 'a refused PUT changes nothing')
  await fetch(`${engine.url}/_standin/values`, { method: 'DELETE' })
  assert.equal((await query('a')).status, 404)
})

test('GET /query without a target is a 400, an unknown query a 404', async () => {
  assert.equal((await get('/query')).status, 400)
  const unknown = await query('nobody-scripted-this')
  assert.equal(unknown.status, 404)
  assert.equal(unknown.body.error, 'unknown_query')
})

test('notify and resolve are answered 200 and recorded in order, filtered by since, alertName and kind', async () => {
  assert.equal((await send('POST', '/notify', { alertName: 'alert-1', message: 'above 50' })).status, 200)
  assert.equal((await send('POST', '/notify', { alertName: 'alert-2', message: 'above 100' })).status, 200)
  assert.equal((await send('POST', '/resolve', { alertName: 'alert-1' })).status, 200)
  const calls = (await (await get('/_standin/calls')).json()) as EngineCall[]
  assert.deepEqual(
    calls.map(({ kind, alertName, message }) => ({ kind, alertName, message })),
    [
      { kind: 'notify', alertName: 'alert-1', message: 'above 50' },
      { kind: 'notify', alertName: 'alert-2', message: 'above 100' },
      { kind: 'resolve', alertName: 'alert-1', message: undefined },
    ],
  )
  const first = calls[0]?.seq ?? 0
  const since = (await (await get(`/_standin/calls?since=${first}&alertName=alert-1`)).json()) as EngineCall[]
  assert.deepEqual(
    since.map((c) => c.kind),
    ['resolve'],
  )
  const notices = (await (await get('/_standin/calls?kind=notify')).json()) as EngineCall[]
  assert.equal(notices.length, 2)
  await fetch(`${engine.url}/_standin/calls`, { method: 'DELETE' })
  assert.deepEqual(engine.calls(), [])
})

test('notify and resolve bodies without their fields are 400s and are not recorded', async () => {
  assert.equal((await send('POST', '/notify', { alertName: 'alert-1' })).status, 400)
  assert.equal((await send('POST', '/notify', { message: 'x' })).status, 400)
  assert.equal((await send('POST', '/resolve', { alertName: '' })).status, 400)
  assert.equal((await send('POST', '/resolve', 'not json')).status, 400)
  assert.deepEqual(engine.calls(), [])
})

test('an injected failure is an HTTP 500 on every engine endpoint, and a failed notify is not recorded', async () => {
  engine.setValues({ q: 1 })
  const before = engine.stats()
  engine.setFaults({ failNext: 4 })
  assert.equal((await get('/alerts')).status, 500)
  assert.equal((await query('q')).status, 500)
  assert.equal((await send('POST', '/notify', { alertName: 'a', message: 'm' })).status, 500)
  assert.equal((await send('POST', '/resolve', { alertName: 'a' })).status, 500)
  assert.deepEqual(engine.calls(), [])
  assert.equal((await query('q')).status, 200, 'the next call succeeds')
  const stats = engine.stats()
  for (const endpoint of ['alerts', 'query', 'notify', 'resolve'] as const) {
    assert.equal(stats.failed[endpoint] - before.failed[endpoint], 1, `one ${endpoint} failed`)
  }
  assert.equal(stats.requests.query - before.requests.query, 2)
  engine.setFaults({ failNext: 1, status: 503 })
  assert.equal((await get('/alerts')).status, 503)
})

test('failRate: 1 fails every engine call, 0 none, and the control endpoints never fail', async () => {
  engine.setValues({ q: 1 })
  engine.setFaults({ failRate: 1 })
  for (let i = 0; i < 20; i++) assert.equal((await query('q')).status, 500)
  assert.equal((await get('/_standin/health')).status, 200)
  assert.equal((await get('/_standin/calls')).status, 200)
  engine.setFaults({ failRate: 0 })
  for (let i = 0; i < 200; i++) assert.equal((await query('q')).status, 200)
})

test('a seeded failRate fails the same calls every time, near the asked share', async () => {
  engine.setValues({ q: 1 })
  const draw = async () => {
    engine.setFaults({ failRate: 0.2, seed: 7 })
    const statuses: number[] = []
    for (let i = 0; i < 300; i++) statuses.push((await query('q')).status)
    return statuses
  }
  const first = await draw()
  assert.deepEqual(await draw(), first)
  const share = first.filter((s) => s === 500).length / first.length
  assert.ok(share > 0.12 && share < 0.28, `share ${share}`)
})

test('faults are read and set over HTTP; wrong ones are refused naming the field', async () => {
  const put = await send('PUT', '/_standin/faults', { failRate: 0.02, seed: 3 })
  assert.deepEqual(await put.json(), { failRate: 0.02, seed: 3 })
  assert.deepEqual(await (await get('/_standin/faults')).json(), { failRate: 0.02, seed: 3 })
  const bad = await send('PUT', '/_standin/faults', { failRate: 2 })
  assert.equal(bad.status, 400)
  assert.match(((await bad.json()) as { message: string }).message, /failRate must be a number from 0 to 1/)
  assert.deepEqual(await (await fetch(`${engine.url}/_standin/faults`, { method: 'DELETE' })).json(), {})
  assert.throws(() => parseEngineFaults({ permanentRecipients: [] }), /unknown fault permanentRecipients/)
  assert.throws(() => parseEngineFaults({ status: 200 }), /status must be an HTTP error status/)
})

test("without faults given, the stand-in fails the engine's 1.5% of calls", async () => {
  const plain = await startAlertsEngineStandIn({ port: 0, quiet: true })
  try {
    assert.equal(defaultEngineFailRate, 0.015)
    assert.deepEqual(plain.faults(), { failRate: 0.015 })
  } finally {
    await plain.close()
  }
})

test('wrong methods and paths get error answers, garbage bytes a 400, and the stand-in stays up', async () => {
  assert.equal((await send('POST', '/alerts', {})).status, 405)
  assert.equal((await get('/notify')).status, 405)
  assert.equal((await get('/elsewhere')).status, 404)
  assert.equal((await get('/_standin/elsewhere')).status, 404)
  assert.equal((await send('POST', '/_standin/faults', {})).status, 405)
  assert.match(await talkRaw(engine.port, [garbage(400), '\r\n\r\n']), /^HTTP\/1\.1 400/)
  assert.equal((await get('/alerts')).status, 200)
})

test('alerts from a file, calls recorded to JSONL', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'alerts-engine-'))
  dirs.push(dir)
  const file = join(dir, 'alerts.json')
  writeFileSync(file, JSON.stringify({ alerts: [alert] }))
  const fromFile = await startAlertsEngineStandIn({
    port: 0,
    quiet: true,
    alertsFile: file,
    faults: {},
    recordDir: dir,
  })
  try {
    assert.deepEqual(fromFile.alerts(), [alert])
    await fetch(`${fromFile.url}/resolve`, { method: 'POST', body: '{"alertName":"alert-1"}' })
    const lines = readFileSync(join(dir, 'alerts-engine.jsonl'), 'utf8').trim().split('\n')
    assert.deepEqual(
      lines.map((l) => (JSON.parse(l) as EngineCall).kind),
      ['resolve'],
    )
  } finally {
    await fromFile.close()
  }
  writeFileSync(file, '{"alerts": 3}')
  await assert.rejects(
    startAlertsEngineStandIn({ port: 0, alertsFile: file }),
    /alerts file .*alerts\.json: alerts must be/,
  )
})

test('the sandbox starts the alerts engine only when asked, and points ALERTS_ENGINE_URL at it', async () => {
  const ports = { smtp: 0, smtpHttp: 0, twilio: 0, slack: 0, webhook: 0, alertsEngine: 0 }
  const without = await startSandbox({ ports, quiet: true })
  try {
    assert.equal(without.alertsEngine, undefined)
    assert.equal(without.env.ALERTS_ENGINE_URL, undefined)
  } finally {
    await without.close()
  }
  const withEngine = await startSandbox({
    ports,
    quiet: true,
    alertsEngine: true,
    faults: { alertsEngine: {} },
  })
  try {
    const url = withEngine.env.ALERTS_ENGINE_URL ?? ''
    assert.equal(url, withEngine.alertsEngine?.url)
    assert.deepEqual(await (await fetch(`${url}/alerts`)).json(), [])
    assert.ok(withEngine.describe().some((line) => line.includes(`${url}/_standin/calls`)))
  } finally {
    await withEngine.close()
  }
})

test('run on its own, it takes --port, --alerts, --fail-rate and --quiet, and exits 0 on SIGTERM', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'alerts-engine-cli-'))
  dirs.push(dir)
  const file = join(dir, 'alerts.json')
  writeFileSync(file, JSON.stringify([alert]))
  const child = spawn(
    process.execPath,
    [
      join(repoRoot, 'dev/standins/alerts-engine.ts'),
      '--port',
      '0',
      '--alerts',
      file,
      '--fail-rate',
      '0',
      '--quiet',
    ],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString()
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const deadline = Date.now() + 30_000 // a bound for a busy machine; the loop ends as soon as the line is there
  while (!/on http:\/\/\S+ /.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  const url = /on (http:\/\/\S+) /.exec(out)?.[1] ?? ''
  assert.match(out, /\(1 alerts, failRate 0\)/)
  assert.deepEqual(await (await fetch(`${url}/alerts`)).json(), [alert])
  await fetch(`${url}/notify`, { method: 'POST', body: '{"alertName":"alert-1","message":"m"}' })
  child.kill('SIGTERM')
  assert.equal(await exited, 0)
  assert.doesNotMatch(out, /notify alert-1/, 'quiet: no line per call')
})
