// Production entry points read no test switch: no production source (the router's included) mentions the
// variables that the test-only entry points (test/support/entries/) understand, they have no effect on
// api/src/main.ts and distributor/src/main.ts, while the same variables through the test entry do break
// things (so the test can fail).
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { repoRoot } from '../../dev/lib/process.ts'
import { freePort } from '../helpers.ts'
import { testContext } from '../support/context.ts'
import { emailRecord, produceRecords, serviceEnv, type TestNamespace } from '../support/fixtures.ts'
import { eventually } from '../support/service-process.ts'

const switches = {
  HERALD_TEST_CRASH_ON: 'CRASH-ME',
  HERALD_TEST_BROKEN_VARIANT: 'seek-latest',
  HERALD_TEST_LEAK: '1',
}
const ctx = testContext({ smtp: true })

function sourceFiles(dir: string): string[] {
  return readdirSync(join(repoRoot, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => /\.(ts|lua)$/.test(f))
    .map((f) => join(dir, f))
}

test('no production source file mentions a HERALD_TEST_ variable', () => {
  const files = ['api/src', 'distributor/src', 'router/src', 'shared/src'].flatMap(sourceFiles)
  assert.ok(files.length > 20, `found only ${files.length} source files`)
  const offenders = files.filter((f) => readFileSync(join(repoRoot, f), 'utf8').includes('HERALD_TEST'))
  assert.deepEqual(offenders, [])
})

async function emailSetup(label: string) {
  const ns = await ctx.setup(label)
  // Produced before the distributor starts (seek-latest would skip them), one of them carrying the marker.
  const records = [
    emailRecord(`${ns.prefix}-0`, 'a@example.com'),
    emailRecord(`${ns.prefix}-1`, 'b@example.com', { message: 'please CRASH-ME now' }),
    emailRecord(`${ns.prefix}-2`, 'c@example.com'),
  ]
  await produceRecords(ctx.producer, ns.topics.main('email'), records)
  return { ns, records }
}

function distributor(ns: TestNamespace, name: string, entry: 'production' | 'test') {
  const env = serviceEnv(ns, { SMTP_URL: ctx.smtp.url }, { CHANNEL: 'email', ...switches })
  return ctx.service(name, 'distributor', env, { entry })
}

const deliveredOf = (ns: TestNamespace) => new Set(ctx.deliveredIds(ns))

test('the production distributor ignores the crash marker and the broken variant', async () => {
  const { ns, records } = await emailSetup('switch-prod')
  const d = distributor(ns, 'switch-prod', 'production')
  await eventually(
    'every record delivered by the production distributor',
    () => (records.every((r) => deliveredOf(ns).has(r.id)) ? true : undefined),
    60_000,
    200,
  )
  assert.equal(d.child.exitCode, null, 'the production distributor is still running')
  assert.equal(d.child.signalCode, null)
  assert.ok(!d.lines.some((l) => String(l.msg ?? '').includes('TEST-ONLY')))
  d.kill('SIGTERM')
  assert.equal(await d.exited, 0)
})

test('control: the same variables through the test entry point do break the distributor', async () => {
  const { ns } = await emailSetup('switch-test')
  const d = distributor(ns, 'switch-test', 'test')
  await d.waitForLog((l) => String(l.msg ?? '').includes('TEST-ONLY BROKEN VARIANT'))
  await d.waitForLog((l) => String(l.msg ?? '').includes('claimed partition'))
  // seek-latest: the records produced before it started are never fetched, so the marker never kills it.
  const late = emailRecord(`${ns.prefix}-late`, 'late@example.com', { message: 'CRASH-ME late' })
  await produceRecords(ctx.producer, ns.topics.main('email'), [late])
  assert.equal(await d.exited, 'SIGKILL', 'the marker killed the test-entry distributor')
  assert.equal(deliveredOf(ns).size, 0, 'records produced before the start were skipped (seek-latest)')
})

test('the production api ignores the leak switch; the test entry point honours it', async () => {
  const ns = ctx.namespace('switch-api')
  const base = serviceEnv(ns, {}, switches)
  const startApi = async (name: string, entry: 'production' | 'test') => {
    const p = ctx.service(name, 'api', { ...base, PORT: String(await freePort()) }, { entry })
    await p.waitForLog((l) => String(l.msg ?? '').includes('api listening'))
    return p
  }
  const prod = await startApi('api-prod', 'production')
  const withLeak = await startApi('api-test', 'test')
  assert.ok(
    !prod.lines.some((l) => String(l.msg ?? '').includes('TEST-ONLY')),
    'production api: no test mode',
  )
  assert.ok(
    withLeak.lines.some((l) => String(l.msg ?? '').includes('TEST-ONLY LEAK')),
    'test entry: leak on',
  )
  prod.kill('SIGTERM')
  withLeak.kill('SIGTERM')
  assert.equal(await prod.exited, 0)
  await withLeak.exited
})
