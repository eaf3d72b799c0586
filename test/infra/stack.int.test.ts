import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { test } from 'node:test'
import { startKafka } from '../../dev/lib/kafka.ts'
import { commandLineOf, isPortOpen } from '../../dev/lib/process.ts'
import { startRedis } from '../../dev/lib/redis.ts'
import { stackStatus, startStack } from '../../dev/lib/stack.ts'
import { freePort, startPrivateStack } from '../helpers.ts'

test('a second start reuses the running broker and Redis, and stopping leaves nothing running', async () => {
  const own = await startPrivateStack()
  try {
    const { kafka, redis } = stackStatus(own.stack)
    assert.ok(kafka && redis, 'both servers have a pid')
    const again = await startStack(own.stack)
    assert.equal(again.startedKafka, false)
    assert.equal(again.startedRedis, false)
    assert.deepEqual(stackStatus(own.stack), { kafka, redis })
    await own.destroy()
    assert.deepEqual(stackStatus(own.stack), { kafka: undefined, redis: undefined })
    assert.equal(commandLineOf(kafka), '', 'the broker process is gone')
    assert.equal(await isPortOpen(own.stack.kafka.port), false)
    assert.equal(await isPortOpen(own.stack.redis.port), false)
  } finally {
    await own.destroy()
  }
})

test('a port held by another process is a clear error for Kafka and for Redis', async () => {
  const squatter = createServer().listen(0, '127.0.0.1')
  await new Promise((resolve) => squatter.once('listening', resolve))
  const address = squatter.address()
  const port = typeof address === 'object' && address ? address.port : 0
  try {
    await assert.rejects(
      startKafka({ port, controllerPort: await freePort(), dataDir: `/tmp/herald-squat-${port}` }),
      /port \d+ is already in use by a process Herald did not start/,
    )
    await assert.rejects(
      startRedis({ port, dataDir: `/tmp/herald-squat-${port}` }),
      /port \d+ is already in use by a process Herald did not start/,
    )
  } finally {
    squatter.close()
  }
})
