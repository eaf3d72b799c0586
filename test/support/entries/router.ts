// Test-only entry point of the router: the production main() with faults composed in, chosen by variables
// that only this file reads (startService picks it when a HERALD_TEST_ variable is set).
//   HERALD_TEST_CRASH_MID_FANOUT=N  the N-th produce of notifications (a sendBatch of 2 or more records) sends
//                                   only its first half, acks=all, then SIGKILLs the process: some of the
//                                   fan-out is in Kafka, none of it is finished, the offset has not moved
//   HERALD_TEST_BROKEN_IDS=1        each process salts the notification ids it produces with a value of its
//                                   own, so a replay after a restart carries new ids (a negative control)
import { randomUUID } from 'node:crypto'
import { hashedUuid } from '@herald/shared/alarm-events'
import type { Kafka, Message, Producer, ProducerBatch, TopicMessages } from 'kafkajs'
import { main } from '../../../router/src/main.ts'

const crashAt = Number(process.env.HERALD_TEST_CRASH_MID_FANOUT ?? 0)
const brokenIds = process.env.HERALD_TEST_BROKEN_IDS === '1'
const salt = randomUUID()

/** The first `count` messages of `batch`, in order, topic by topic. */
function firstMessages(batch: ProducerBatch, count: number): TopicMessages[] {
  const kept: TopicMessages[] = []
  let left = count
  for (const { topic, messages } of batch.topicMessages ?? []) {
    if (left <= 0) break
    kept.push({ topic, messages: messages.slice(0, left) })
    left -= messages.length
  }
  return kept
}

/** The message with its record's id salted by this process (sendBatch carries only notifications). */
function salted(message: Message): Message {
  const record = JSON.parse(String(message.value)) as { id: string }
  return { ...message, value: JSON.stringify({ ...record, id: hashedUuid([record.id, salt]) }) }
}

function withFaults(producer: Producer, counter: { produces: number }): Producer {
  return {
    ...producer,
    sendBatch: async (original) => {
      const batch = brokenIds
        ? {
            ...original,
            topicMessages: (original.topicMessages ?? []).map((t) => ({
              ...t,
              messages: t.messages.map(salted),
            })),
          }
        : original
      const total = (batch.topicMessages ?? []).reduce((sum, t) => sum + t.messages.length, 0)
      if (crashAt === 0 || total < 2 || ++counter.produces !== crashAt) return producer.sendBatch(batch)
      const half = Math.floor(total / 2)
      await producer.sendBatch({ ...batch, topicMessages: firstMessages(batch, half) })
      // A pipe's writes are synchronous on Linux: the line is out before the kill.
      process.stdout.write(
        `${JSON.stringify({ level: 40, msg: 'TEST-ONLY crash point: SIGKILL mid-fan-out', produced: half, of: total })}\n`,
      )
      process.kill(process.pid, 'SIGKILL')
      return new Promise(() => {})
    },
  }
}

function withFaultyProducers(kafka: Kafka): Kafka {
  // Every producer of every router counts towards the same N-th produce.
  const counter = { produces: 0 }
  return {
    producer: (config) => withFaults(kafka.producer(config), counter),
    consumer: (config) => kafka.consumer(config),
    admin: (config) => kafka.admin(config),
    logger: () => kafka.logger(),
  }
}

const warnings = [
  ...(crashAt > 0 ? [`this router SIGKILLs itself half-way through produce ${crashAt}`] : []),
  ...(brokenIds ? ['this router salts its notification ids: a replay repeats notifications'] : []),
]
main(
  warnings.length > 0
    ? { wrapKafka: withFaultyProducers, warning: `TEST-ONLY FAULTS: ${warnings.join('; ')}` }
    : {},
).catch((error: unknown) => {
  console.error('router failed to start:', error)
  process.exit(1)
})
