// Herald's Kafka client on Node 24, in a process of its own: no warnings hidden, none emitted.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { kafkaBrokers, requireServers } from '../../test/helpers.ts'

const cycle = fileURLToPath(new URL('./fixtures/kafka-cycle.ts', import.meta.url))
const fetchAfterStop = fileURLToPath(new URL('./fixtures/fetch-after-stop.ts', import.meta.url))

/** Runs a fixture; one that has not exited after `killAfterMs` is SIGKILLed (its code is then null). */
function run(
  fixture = cycle,
  killAfterMs = 120_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // A clean environment: nothing that hides a warning (no NODE_OPTIONS, no KAFKAJS_NO_* switch). The
    // cycle's producer names no partitioner: the client must, or kafkajs logs its partitioner notice.
    const child = spawn(process.execPath, [fixture], {
      env: { PATH: process.env.PATH ?? '', KAFKA_BROKERS: kafkaBrokers() },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString('utf8')
    })
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString('utf8')
    })
    const kill = setTimeout(() => child.kill('SIGKILL'), killAfterMs)
    child.once('error', reject)
    child.once('exit', (code) => {
      clearTimeout(kill)
      resolve({ code, stdout, stderr })
    })
  })
}

test('a produce and consume cycle through the Kafka client emits no warning of any kind', async () => {
  await requireServers()
  const { code, stdout, stderr } = await run()
  assert.equal(code, 0, stderr)
  const report = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as {
    warnings: Array<{ name: string; message: string }>
    kafkaLog: Array<{ level: number; msg: string }>
  }
  // kafkajs warns through its logger, not process warnings (its partitioner notice is one): none either.
  assert.deepEqual(report.kafkaLog, [], 'kafkajs logged no warning or error')
  // Every process warning counts (TimeoutNegativeWarning from kafkajs' idle timer was the one seen), not a
  // chosen few: a new one fails here until it is fixed where it comes from.
  assert.deepEqual(report.warnings, [], 'the process emitted no warning')
  assert.equal(stderr, '', 'nothing on stderr (Node prints every process warning there)')
})

test('fetchers made again after their consumer stopped end instead of spinning (a stopped fetch throws)', async () => {
  // No broker needed: kafkajs' fetch manager and the runner's fetch, in a process of its own. Unpatched, the
  // process spins without yielding and is killed after 30 s: exit code null, nothing printed.
  const { code, stdout, stderr } = await run(fetchAfterStop, 30_000)
  assert.equal(code, 0, `the fixture did not finish (spinning?): ${stderr}`)
  assert.deepEqual(JSON.parse(stdout.trim()), { ended: 'rejected', name: 'ConsumerStoppedError' })
})
