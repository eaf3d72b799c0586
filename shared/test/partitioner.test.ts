// Herald's partitioner must put every record where kafkajs' DefaultPartitioner (Kafka's Java default) does:
// one recipient, one partition, whichever producer wrote it. Compared key by key with kafkajs' own.
import assert from 'node:assert/strict'
import { randomBytes, randomInt } from 'node:crypto'
import { describe, test } from 'node:test'
import { type PartitionerArgs, Partitioners } from 'kafkajs'
import { HeraldPartitioner, keyPartition, murmur2 } from '../src/partitioner.ts'

type Metadata = PartitionerArgs['partitionMetadata']

const metadata = (count: number, leaderless: number[] = []): Metadata =>
  Array.from({ length: count }, (_, partitionId) => ({
    partitionId,
    leader: leaderless.includes(partitionId) ? -1 : 0,
    partitionErrorCode: 0,
    replicas: [0],
    isr: [0],
  }))

/** Keys of every length 0–40 (all four tail cases) and a few long ones: ASCII, multi-byte UTF-8, raw bytes. */
function sampleKeys(): Array<string | Buffer> {
  const keys: Array<string | Buffer> = [
    '',
    'a',
    'ab',
    'abc',
    'abcd',
    'user1@example.com',
    'é',
    '日本語',
    '🚀x',
  ]
  // Longer than the partitioner's first scratch buffer (256 bytes): it grows.
  keys.push('k'.repeat(300), '日本語'.repeat(120), '🚀'.repeat(200))
  for (let i = 0; i < 3000; i++) {
    const length = randomInt(41)
    if (i % 3 === 0) keys.push(randomBytes(length))
    else if (i % 3 === 1) keys.push(randomBytes(length).toString('base64').slice(0, length))
    else keys.push(Array.from({ length }, () => String.fromCodePoint(randomInt(0x20, 0x3000))).join(''))
  }
  return keys
}

describe('HeraldPartitioner', () => {
  test('gives every key the partition kafkajs DefaultPartitioner gives it', () => {
    const theirs = Partitioners.DefaultPartitioner()
    const ours = HeraldPartitioner()
    for (const count of [1, 3, 12, 64, 100]) {
      const partitionMetadata = metadata(count)
      for (const key of sampleKeys()) {
        const args = { topic: 't', partitionMetadata, message: { key, value: null } }
        assert.equal(ours(args), theirs(args), `key ${JSON.stringify(key)} over ${count} partitions`)
      }
    }
  })

  test("murmur2 matches Kafka's published values", () => {
    // Kafka's UtilsTest.testMurmur2 (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java).
    const cases: Array<[string, number]> = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ]
    for (const [text, expected] of cases) assert.equal(murmur2(Buffer.from(text)), expected, text)
    assert.equal(murmur2(Buffer.from([97, 98, 99])), 479470107)
  })

  test("honours a record's own partition", () => {
    const ours = HeraldPartitioner()
    const args = {
      topic: 't',
      partitionMetadata: metadata(12),
      message: { key: 'k', value: null, partition: 7 },
    }
    assert.equal(ours(args), 7)
    assert.notEqual(keyPartition('k', 12), 7)
  })

  test('sends keyless records round robin over the partitions that have a leader', () => {
    const ours = HeraldPartitioner()
    const partitionMetadata = metadata(6, [1, 4])
    const seen = Array.from({ length: 40 }, () =>
      ours({ topic: 't', partitionMetadata, message: { value: 'x' } }),
    )
    assert.deepEqual([...new Set(seen)].sort(), [0, 2, 3, 5])
    for (let i = 1; i < seen.length; i++) {
      const step = [0, 2, 3, 5].indexOf(seen[i] as number) - [0, 2, 3, 5].indexOf(seen[i - 1] as number)
      assert.ok(step === 1 || step === -3, `round robin: ${seen.join(',')}`)
    }
    const none = metadata(3, [0, 1, 2])
    const all = new Set(
      Array.from({ length: 12 }, () =>
        ours({ topic: 'u', partitionMetadata: none, message: { value: 'x' } }),
      ),
    )
    assert.deepEqual([...all].sort(), [0, 1, 2])
  })
})
