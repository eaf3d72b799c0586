// Negative controls: each broken variant removes one rule of the offset protocol, to show that the
// at-least-once tests can fail. Passed into the distributor by composition (test/support/entries/), never
// selected by production code.
import type { ProtocolFaults } from '../../distributor/src/consumer.ts'

export const brokenVariants = {
  /** Records the offset past a batch before delivering it (rule 3): a crash mid-batch loses the rest. */
  'advance-before-delivery': {
    beforeDelivery: (lastAccepted, advance) => advance(lastAccepted + 1),
  },
  /** Starts every claim at the log end (rule 1), as kafkajs' default fromBeginning: false would. */
  'seek-latest': { claimStart: ({ logEnd }) => logEnd },
  /** Delivers offsets the tracker would skip (rule 2): finished records are delivered again. */
  'no-skip-guard': { offer: (decision) => (decision === 'skip' ? 'accept' : decision) },
} satisfies Record<string, ProtocolFaults>

export type BrokenVariant = keyof typeof brokenVariants

export function brokenVariant(name: string): ProtocolFaults {
  const faults = (brokenVariants as Record<string, ProtocolFaults>)[name]
  if (!faults)
    throw new Error(`unknown broken variant ${name} (known: ${Object.keys(brokenVariants).join(', ')})`)
  return faults
}
