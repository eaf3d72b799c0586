import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Slots } from '../src/slots.ts'

test('no more than the size is taken at once, and waiters get slots in the order they asked', async () => {
  const slots = new Slots(2)
  await slots.acquire()
  await slots.acquire()
  assert.equal(slots.free, 0)
  const order: number[] = []
  const third = slots.acquire().then(() => order.push(3))
  const fourth = slots.acquire().then(() => order.push(4))
  await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(order, [], 'both wait while every slot is taken')
  slots.release()
  await third
  assert.deepEqual(order, [3])
  slots.release()
  await fourth
  assert.deepEqual(order, [3, 4])
  slots.release()
  slots.release()
  assert.equal(slots.free, 2)
})

test('a size below one is refused', () => {
  assert.throws(() => new Slots(0), /size must be ≥ 1/)
})
