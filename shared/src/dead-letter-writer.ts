// Writing dead letters, the distributors' and the router's: they keep the original bytes and say why,
// where from and when, in headers.

import type { KafkaMessage, Producer } from 'kafkajs'

export interface DeadLetter {
  message: KafkaMessage
  topic: string
  partition: number
  reason: string
  /** A channel's failure class, `poison`, `crash-loop`, or the router's `render`. */
  failureClass: string
  attempts: number
}

export function deadLetterHeaders(letter: DeadLetter, now = new Date()): Record<string, string | Buffer> {
  const original: Record<string, string | Buffer> = {}
  for (const [name, value] of Object.entries(letter.message.headers ?? {})) {
    if (value === undefined) continue
    original[name] = Array.isArray(value) ? String(value[0] ?? '') : value
  }
  return {
    ...original,
    'herald-error': letter.reason.slice(0, 1000),
    'herald-error-class': letter.failureClass,
    'herald-attempts': String(letter.attempts),
    'herald-original-topic': letter.topic,
    'herald-original-partition': String(letter.partition),
    'herald-original-offset': letter.message.offset,
    'herald-failed-at': now.toISOString(),
  }
}

/** Writes dead letters with acks=all; resolves only once the broker acknowledged them. */
export async function writeDeadLetters(
  producer: Producer,
  topic: string,
  letters: DeadLetter[],
): Promise<void> {
  if (letters.length === 0) return
  await producer.send({
    topic,
    acks: -1,
    messages: letters.map((l) => ({
      key: l.message.key,
      value: l.message.value,
      headers: deadLetterHeaders(l),
    })),
  })
}
