import assert from 'node:assert/strict'
import { test } from 'node:test'
import { PartitionTracker } from '../../src/offsets/tracker.ts'

test('next moves only over the contiguous finished prefix', () => {
  const t = new PartitionTracker(10)
  for (const o of [10, 11, 12, 13]) assert.equal(t.offer(o), 'accept')
  t.finish(11)
  t.finish(13)
  assert.equal(t.next, 10, 'an unfinished 10 holds next back')
  t.finish(10)
  assert.equal(t.next, 12, 'then 10 and 11 are done, 12 is not')
  t.finish(12)
  assert.equal(t.next, 14)
  assert.equal(t.inFlight, 0)
})

test('a message below the claimed offset is skipped', () => {
  const t = new PartitionTracker(5)
  assert.equal(t.offer(3), 'skip')
  assert.equal(t.offer(4), 'skip')
  assert.equal(t.offer(5), 'accept')
  assert.equal(t.offer(5), 'skip', 'an offset accepted before is not accepted twice')
})

test('an offset above the expected one is a gap, not accepted', () => {
  const t = new PartitionTracker(7)
  assert.equal(t.offer(9), 'gap')
  assert.equal(t.expected, 7)
  assert.equal(t.offer(7), 'accept')
})

test('finishing an offset that was never accepted changes nothing', () => {
  const t = new PartitionTracker(0)
  t.offer(0)
  t.finish(5)
  t.finish(-1)
  assert.equal(t.next, 0)
  t.finish(0)
  assert.equal(t.next, 1)
})

test('a released offset is accepted again when fetched again; finished ones around it are not', () => {
  const t = new PartitionTracker(0)
  for (const o of [0, 1, 2]) t.offer(o)
  t.finish(0)
  t.finish(2)
  t.release(1)
  assert.equal(t.next, 1)
  assert.equal(t.inFlight, 0)
  // The partition is sought back to next (1) and fetched again.
  assert.equal(t.offer(1), 'accept')
  assert.equal(t.offer(2), 'skip', 'already finished')
  assert.equal(t.offer(3), 'accept')
  t.finish(1)
  assert.equal(t.next, 3)
})

test('offsets an earlier claim finished out of order are skipped, and next moves over them', () => {
  const t = new PartitionTracker(20, [18, 21, 22, 25])
  assert.equal(t.offer(20), 'accept')
  assert.equal(t.offer(21), 'skip', 'finished before: not delivered again')
  assert.equal(t.offer(22), 'skip')
  assert.equal(t.offer(23), 'accept')
  assert.equal(t.next, 20, 'the unfinished 20 still holds next back')
  t.finish(20)
  assert.equal(t.next, 23, '21 and 22 count as finished')
  assert.equal(t.offer(24), 'accept')
  assert.equal(t.offer(25), 'skip')
  t.finish(24)
  t.finish(23)
  assert.equal(t.next, 26)
  assert.equal(t.inFlight, 0)
  assert.equal(t.offer(18), 'skip', 'below next anyway')
})

test('a finished-before offset that comes up out of order is still a gap', () => {
  const t = new PartitionTracker(0, [2])
  assert.equal(t.offer(0), 'accept')
  assert.equal(t.offer(2), 'gap', '1 was not offered yet')
  assert.equal(t.offer(1), 'accept')
  assert.equal(t.offer(2), 'skip')
})
