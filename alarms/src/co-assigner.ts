// A kafkajs partition assigner that co-assigns the alarm topics: partition p of every subscribed topic goes to
// the same member, so the processor that owns an alarm sees its registration, activation and overrides (all
// written to the partition of the alarm's name, see partitioner.ts) together. kafkajs' round robin spreads
// (topic, partition) pairs independently, which would split one alarm's records across members.
import { AssignerProtocol, type PartitionAssigner } from 'kafkajs'

export const coAssignerName = 'HeraldCoAssigner'

/**
 * Partition numbers to members: sorted member ids, partition p to member p mod n. Every topic's partitions
 * follow the same map; a topic with fewer partitions simply has fewer to give.
 */
export function coAssign(
  memberIds: readonly string[],
  partitionsByTopic: ReadonlyMap<string, readonly number[]>,
): Map<string, Record<string, number[]>> {
  const members = [...memberIds].sort()
  const assignment = new Map<string, Record<string, number[]>>(members.map((m) => [m, {}]))
  if (members.length === 0) return assignment
  for (const [topic, partitions] of partitionsByTopic) {
    for (const partition of [...partitions].sort((a, b) => a - b)) {
      const member = members[partition % members.length] as string
      const topics = assignment.get(member) as Record<string, number[]>
      topics[topic] = [...(topics[topic] ?? []), partition]
    }
  }
  return assignment
}

export const CoAssigner: PartitionAssigner = ({ cluster }) => ({
  name: coAssignerName,
  version: 0,
  async assign({ members, topics }) {
    const partitions = new Map(
      topics.map((topic) => [topic, cluster.findTopicPartitionMetadata(topic).map((m) => m.partitionId)]),
    )
    const assignment = coAssign(
      members.map((m) => m.memberId),
      partitions,
    )
    return [...assignment].map(([memberId, topicPartitions]) => ({
      memberId,
      memberAssignment: AssignerProtocol.MemberAssignment.encode({
        version: 0,
        assignment: topicPartitions,
        userData: Buffer.alloc(0),
      }),
    }))
  },
  protocol({ topics }) {
    return {
      name: coAssignerName,
      metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }),
    }
  },
})
