import assert from 'node:assert/strict'
import { test } from 'node:test'
import { randomHex, uuidv7 } from '../src/ids.ts'

const uuidv7Pattern = /^[\da-f]{8}-[\da-f]{4}-7[\da-f]{3}-[89ab][\da-f]{3}-[\da-f]{12}$/

test('an id is a UUIDv7 carrying the time it was made', () => {
  const now = Date.UTC(2026, 0, 2, 3, 4, 5, 678)
  const id = uuidv7(now)
  assert.match(id, uuidv7Pattern)
  assert.equal(Number.parseInt(id.replaceAll('-', '').slice(0, 12), 16), now)
})

test('ids made in later milliseconds sort after earlier ones, and never repeat', () => {
  const ids = Array.from({ length: 2000 }, (_, i) => uuidv7(1_700_000_000_000 + Math.floor(i / 10)))
  assert.equal(new Set(ids).size, ids.length)
  for (let i = 10; i < ids.length; i += 10) assert.ok((ids[i - 1] ?? '') < (ids[i] ?? ''), `${i}`)
  for (const id of ids) assert.match(id, uuidv7Pattern)
})

test('random hex has the asked length and differs between calls, across pool refills', () => {
  const seen = new Set<string>()
  for (let i = 0; i < 10_000; i++) {
    const hex = randomHex(16)
    assert.match(hex, /^[\da-f]{32}$/)
    seen.add(hex)
  }
  assert.equal(seen.size, 10_000)
})
