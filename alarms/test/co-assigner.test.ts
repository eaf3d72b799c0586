import assert from 'node:assert/strict'
import { test } from 'node:test'
import { AlarmPartitioner, alarmOfKey, alarmPartition } from '@herald/shared/alarms/partitioner'
import { Partitioners } from 'kafkajs'
import { coAssign } from '../src/co-assigner.ts'

const topics = (count: number) =>
  new Map(
    ['registered', 'activations', 'overrides'].map((t) => [t, Array.from({ length: count }, (_, i) => i)]),
  )

test('partition p of every alarm topic goes to the same member', () => {
  const assignment = coAssign(['m-b', 'm-a', 'm-c'], topics(12))
  for (const [, byTopic] of assignment) {
    assert.deepEqual(byTopic.activations, byTopic.registered)
    assert.deepEqual(byTopic.overrides, byTopic.registered)
  }
  const owners = new Map<number, string>()
  for (const [member, byTopic] of assignment)
    for (const p of byTopic.registered ?? []) {
      assert.equal(owners.has(p), false, `partition ${p} assigned twice`)
      owners.set(p, member)
    }
  assert.equal(owners.size, 12, 'every partition has an owner')
  assert.deepEqual(
    [...assignment.values()].map((t) => t.registered?.length),
    [4, 4, 4],
    'balanced',
  )
  assert.deepEqual(assignment.get('m-a')?.registered, [0, 3, 6, 9], 'sorted member ids, p mod n')
})

test('more members than partitions: the extra members get nothing', () => {
  const assignment = coAssign(['a', 'b', 'c'], topics(2))
  assert.deepEqual(assignment.get('c'), {})
  assert.deepEqual(assignment.get('a')?.overrides, [0])
})

test('an override key goes to the partition of its alarm name, not of the whole key', () => {
  assert.equal(alarmOfKey('disk-full/shelved'), 'disk-full')
  assert.equal(alarmOfKey('disk-full'), 'disk-full')
  const partitioner = AlarmPartitioner()
  const metadata = Array.from({ length: 12 }, (_, partitionId) => ({
    partitionId,
    leader: 0,
    partitionErrorCode: 0,
    replicas: [0],
    isr: [0],
  }))
  const byKey = Partitioners.DefaultPartitioner()
  let differs = 0
  for (let i = 0; i < 50; i++) {
    const name = `alarm-${i}`
    const p = alarmPartition(name, 12)
    assert.equal(
      partitioner({ topic: 't', partitionMetadata: metadata, message: { key: name, value: null } }),
      p,
    )
    for (const kind of ['shelved', 'latched', 'disabled']) {
      const key = `${name}/${kind}`
      assert.equal(partitioner({ topic: 't', partitionMetadata: metadata, message: { key, value: null } }), p)
      if (byKey({ topic: 't', partitionMetadata: metadata, message: { key, value: null } }) !== p) differs++
    }
  }
  assert.ok(differs > 0, 'the default partitioner would have split them (the test would catch a regression)')
})
