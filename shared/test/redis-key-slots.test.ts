// On Redis Cluster a script may only touch keys of one hash slot, and a pipeline only reaches one node.
// Herald's key builders give the keys a script touches together one hash tag; these tests compute each
// key's slot the way Redis Cluster does (CRC16 of the hash tag, or of the key, mod 16384) and check that
// every Lua script Herald runs, with the keys its callers pass, stays in one slot.
import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { type RedisKeys, redisKeys } from '../src/redis/keys.ts'

/** CRC16/XMODEM (polynomial 0x1021, initial value 0), the checksum Redis Cluster's key slots use. */
function crc16(bytes: Uint8Array): number {
  let crc = 0
  for (const byte of bytes) {
    crc ^= byte << 8
    for (let bit = 0; bit < 8; bit++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  }
  return crc
}

/** The slot of a key: only the part between the first `{` and the next `}` counts, when it is not empty. */
function keySlot(key: string): number {
  const open = key.indexOf('{')
  let hashed = key
  if (open >= 0) {
    const close = key.indexOf('}', open + 1)
    if (close > open + 1) hashed = key.slice(open + 1, close)
  }
  return crc16(new TextEncoder().encode(hashed)) % 16384
}

interface ScriptCall {
  /** The keys the caller passes (KEYS[1..n]), in order. */
  keys: string[]
  /** Keys the script builds itself from an argument (crash guard: liveness keys of other processes). */
  built?: string[]
}

/**
 * Every script file Herald defines, and the keys its caller passes for one (group, topic, partition) or one
 * notification / idempotency key: offsets.ts, crash-guard.ts, idempotency.ts and status.ts build them so.
 */
function scriptCalls(
  k: RedisKeys,
  group: string,
  topic: string,
  partition: number,
): Record<string, ScriptCall> {
  return {
    claimPartition: {
      keys: [k.offsets(group, topic), k.finished(group, topic, partition), k.attempts(group, topic)],
    },
    advanceOffset: { keys: [k.offsets(group, topic)] },
    noteFinished: { keys: [k.offsets(group, topic), k.finished(group, topic, partition)] },
    crashGuardStart: {
      keys: [k.attempts(group, topic)],
      built: [k.liveness(group, topic, 'distributor-a-1'), `${k.liveness(group, topic, '')}distributor-b-2`],
    },
    crashGuardHandBack: { keys: [k.attempts(group, topic)] },
    idempotency: { keys: [k.idempotency('team-a', `order-${partition}`)] },
    changeStatus: { keys: [k.status(`01JD${partition}NOTIFICATION`)] },
    takeToken: { keys: [k.rateLimit('sms', `recipient-${partition}`)] },
  }
}

const scriptDirs = [
  new URL('../src/redis/scripts/', import.meta.url),
  new URL('../src/offsets/', import.meta.url),
  new URL('../../distributor/src/scripts/', import.meta.url),
  new URL('../../api/src/scripts/', import.meta.url),
]

/**
 * name → number of keys, from the `<name>-<numKeys>.lua` files (as defineScripts reads them); `n` (any
 * number) counts as 1: on Redis Cluster such a script is called with one key at a time (status.ts).
 */
function scriptFiles(): Map<string, number> {
  const found = new Map<string, number>()
  for (const dir of scriptDirs) {
    for (const file of readdirSync(fileURLToPath(dir))) {
      const match = /^(\w+)-(\d+|n)\.lua$/.exec(file)
      if (match?.[1] && match[2]) found.set(match[1], match[2] === 'n' ? 1 : Number(match[2]))
    }
  }
  return found
}

const cases: Array<[string, string, number, string]> = [
  ['herald', 'herald-email', 0, 'herald.notifications.email'],
  ['herald', 'herald-sms', 11, 'herald.notifications.sms'],
  ['t-01jd9x', 'grp:with:colons', 5, 'topic.with.dots'],
  ['p', 'g', 1023, 't'],
]

/** The keys' slots differ: describes each key with its slot. */
function spread(keys: string[]): string {
  return keys.map((key) => `${key} → ${keySlot(key)}`).join('\n')
}

describe('Redis Cluster key slots', () => {
  test('the slot rule matches Redis Cluster on its reference values', () => {
    assert.equal(crc16(new TextEncoder().encode('123456789')), 0x31c3)
    assert.equal(keySlot('foo'), 12182)
    assert.equal(keySlot('{user1000}.following'), keySlot('{user1000}.followers'))
    assert.notEqual(keySlot('foo{}{bar}'), keySlot('bar'), 'an empty tag means the whole key is hashed')
    assert.equal(keySlot('foo{{bar}}zap'), keySlot('{bar'))
  })

  test('every script file has a known call, with as many keys as its name says', () => {
    const files = scriptFiles()
    const calls = scriptCalls(redisKeys(), 'g', 't', 0)
    assert.deepEqual(
      [...files.keys()].sort(),
      Object.keys(calls).sort(),
      'a script without a case here, or a case without a script',
    )
    for (const [name, numKeys] of files)
      assert.equal(calls[name]?.keys.length, numKeys, `${name} takes ${numKeys} keys`)
  })

  for (const [prefix, group, partition, topic] of cases) {
    test(`each script's keys share one slot (prefix ${prefix}, group ${group}, partition ${partition})`, () => {
      for (const [name, call] of Object.entries(scriptCalls(redisKeys(prefix), group, topic, partition))) {
        const keys = [...call.keys, ...(call.built ?? [])]
        const slots = new Set(keys.map(keySlot))
        assert.equal(slots.size, 1, `${name} touches keys in ${slots.size} slots:\n${spread(keys)}`)
      }
    })
  }

  test("a distributor's pipelines over its partitions stay in the slot of its group and topic", () => {
    const k = redisKeys()
    // claim and finishedFrom pipeline one command per partition: one node must serve them all.
    const keys = [
      k.offsets('herald-email', 'herald.notifications.email'),
      k.attempts('herald-email', 'herald.notifications.email'),
      ...Array.from({ length: 48 }, (_, p) => k.finished('herald-email', 'herald.notifications.email', p)),
    ]
    assert.equal(new Set(keys.map(keySlot)).size, 1, spread(keys))
  })

  test('a key builder without its hash tag would put a script across slots', () => {
    // The check above fails when a tag is missing: the same keys with the tag's braces removed spread.
    const k = redisKeys()
    const untagged: RedisKeys = {
      ...k,
      finished: (g, t, p) => k.finished(g, t, p).replace('{', '').replace('}', ''),
    }
    const call = scriptCalls(untagged, 'herald-email', 'herald.notifications.email', 3).claimPartition
    assert.ok(call)
    assert.notEqual(new Set(call.keys.map(keySlot)).size, 1, spread(call.keys))
  })
})
