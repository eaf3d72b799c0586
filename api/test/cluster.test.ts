// API_WORKERS: how `auto` counts the cores the process may use from cgroup v2 cpu.max, and how the setting
// is read from the environment.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { loadConfig } from '@herald/shared/config'
import { ConfigError } from '@herald/shared/errors'
import { autoWorkers, coresFromCpuMax } from '../src/cluster.ts'

test('cpu.max gives its quota over its period in whole cores, at least one', () => {
  assert.equal(coresFromCpuMax('200000 100000\n'), 2)
  assert.equal(coresFromCpuMax('400000 100000'), 4)
  assert.equal(coresFromCpuMax('150000 100000'), 1, '1.5 cores: one worker, not two throttled ones')
  assert.equal(coresFromCpuMax('250000 100000'), 2)
  assert.equal(coresFromCpuMax('50000 100000'), 1, 'half a core still runs one worker')
  assert.equal(coresFromCpuMax('300000 50000'), 6, 'another period')
})

test('cpu.max without a quota, or text that is not cpu.max, sets no limit', () => {
  assert.equal(coresFromCpuMax('max 100000\n'), undefined)
  assert.equal(coresFromCpuMax(''), undefined)
  assert.equal(coresFromCpuMax('200000'), undefined)
  assert.equal(coresFromCpuMax('200000 0'), undefined)
  assert.equal(coresFromCpuMax('lots of cores'), undefined)
})

test('auto is the fewest of the available CPUs and every cgroup quota', () => {
  assert.equal(autoWorkers(8, []), 8, 'no cgroup v2 cpu.max: the CPUs the process may run on')
  assert.equal(autoWorkers(8, ['max 100000']), 8)
  assert.equal(autoWorkers(8, ['200000 100000']), 2, 'a container limited to 2 cores on an 8-core node')
  assert.equal(autoWorkers(2, ['400000 100000']), 2, 'a quota above the CPUs does not add workers')
  assert.equal(autoWorkers(16, ['max 100000', '300000 100000']), 3, 'a parent cgroup limit counts too')
  assert.equal(autoWorkers(0, []), 1)
})

test('API_WORKERS is 1 by default, auto, or a number from 1 to 256', () => {
  assert.equal(loadConfig({}).apiWorkers, 1)
  assert.equal(loadConfig({ API_WORKERS: 'auto' }).apiWorkers, 'auto')
  assert.equal(loadConfig({ API_WORKERS: ' Auto ' }).apiWorkers, 'auto')
  assert.equal(loadConfig({ API_WORKERS: '4' }).apiWorkers, 4)
  for (const bad of ['0', '-1', '1.5', 'two', '257']) {
    assert.throws(
      () => loadConfig({ API_WORKERS: bad }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message.includes(
          `API_WORKERS: must be auto or a number of workers from 1 to 256 (got "${bad}")`,
        ),
      bad,
    )
  }
})
