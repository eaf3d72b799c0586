// The router benchmark's baseline as a process of its own (so its CPU is read from /proc like the router's):
// a bare kafkajs consume-and-produce loop. It reads the alarm events and, per event, produces `fanOut`
// records of about the router's size (the event embedded, as the router does) with acks=all, then resolves the
// offsets and lets kafkajs commit them. No matching, rendering, statuses, offset protocol or reminders.
//   node bench/relay-process.ts <brokers> <inTopic> <outTopic> <groupId> <fanOut> <partitions>
// Runs until SIGTERM.
import type { AlarmEvent } from '@herald/shared/alarm-events'
import { createKafka } from '@herald/shared/kafka'
import { createLogger } from '@herald/shared/logger'
import { type Message, Partitioners } from 'kafkajs'

const [brokers, inTopic, outTopic, groupId, fanOutText, partitionsText] = process.argv.slice(2)
if (!brokers || !inTopic || !outTopic || !groupId) {
  console.error(
    'usage: node bench/relay-process.ts <brokers> <inTopic> <outTopic> <groupId> <fanOut> <partitions>',
  )
  process.exit(2)
}
const fanOut = Number(fanOutText ?? 1)
/** Events per produce request, as the router chunks them. */
const chunkSize = 200

// The router's client (shared/src/kafka.ts, with its fix of kafkajs's idle 1 ms timer), so the two differ
// only in what they do with a record.
const kafka = createKafka({
  brokers: brokers.split(','),
  clientId: 'bench-relay',
  logger: createLogger({ service: 'bench-relay', level: 'silent' }),
})
const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 500, allowAutoTopicCreation: false })
const producer = kafka.producer({
  allowAutoTopicCreation: false,
  createPartitioner: Partitioners.DefaultPartitioner,
  idempotent: false,
})
await Promise.all([consumer.connect(), producer.connect()])
await consumer.subscribe({ topic: inTopic, fromBeginning: true })

function recordsOf(value: Buffer | null): Message[] {
  const event = JSON.parse(value?.toString('utf8') ?? '{}') as AlarmEvent
  return Array.from({ length: fanOut }, (_, k) => {
    const to = `recipient-${k}@example.com`
    const record = {
      v: 1,
      id: `${event.eventId}-${k}`,
      channel: 'email',
      to,
      subject: `[${event.newState}] ${event.alarmName}`,
      message: `Alarm ${event.alarmName} went from ${event.oldState ?? 'OK'} to ${event.newState}`,
      createdAt: new Date().toISOString(),
      event,
    }
    return { key: to, value: JSON.stringify(record) }
  })
}

await consumer.run({
  eachBatchAutoResolve: false,
  partitionsConsumedConcurrently: Number(partitionsText ?? 1),
  eachBatch: async ({ batch, resolveOffset, heartbeat, commitOffsetsIfNecessary, isRunning }) => {
    for (let i = 0; i < batch.messages.length && isRunning(); i += chunkSize) {
      const chunk = batch.messages.slice(i, i + chunkSize)
      await producer.sendBatch({
        acks: -1,
        topicMessages: [{ topic: outTopic, messages: chunk.flatMap((m) => recordsOf(m.value)) }],
      })
      const last = chunk.at(-1)
      if (last) resolveOffset(last.offset)
      await commitOffsetsIfNecessary()
      await heartbeat()
    }
  },
})

process.once('SIGTERM', () => {
  setTimeout(() => process.exit(0), 3000).unref()
  void consumer
    .disconnect()
    .then(() => producer.disconnect())
    .then(() => process.exit(0))
})
