import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url))

test('a bad configuration stops the api at start, naming every bad variable', () => {
  const run = spawnSync(process.execPath, [main], {
    cwd: tmpdir(), // no .env file here
    env: {
      PATH: process.env.PATH ?? '',
      PRODUCE_TIMEOUT_MS: 'soon',
      API_KEYS: 'no-colon-here',
      REDIS_URL: 'http://127.0.0.1:6379',
    },
    encoding: 'utf8',
    timeout: 20_000,
  })
  assert.equal(run.status, 1, run.stderr)
  for (const name of ['PRODUCE_TIMEOUT_MS', 'API_KEYS', 'REDIS_URL'])
    assert.match(run.stderr, new RegExp(name))
  assert.doesNotMatch(run.stderr, /at .*\.ts:\d+/, 'a message, not a stack trace')
})
