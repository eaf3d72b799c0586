// Test-only entry point of the distributor: the production main() with faults composed in, chosen by
// variables that only this file reads (startService picks it when a HERALD_TEST_ variable is set).
//   HERALD_TEST_BROKEN_VARIANT  one of test/support/faults.ts (a negative control)
//   HERALD_TEST_CRASH_ON        a message containing this text SIGKILLs the process mid-delivery
import type { Channel } from '../../../distributor/src/channels/channel.ts'
import { main } from '../../../distributor/src/main.ts'
import { brokenVariant } from '../faults.ts'

const variant = process.env.HERALD_TEST_BROKEN_VARIANT
const crashOn = process.env.HERALD_TEST_CRASH_ON

function crashingOn(marker: string) {
  return (channel: Channel): Channel => ({
    name: channel.name,
    send: (record, signal) => {
      if (record.message.includes(marker)) process.kill(process.pid, 'SIGKILL')
      return channel.send(record, signal)
    },
    close: () => channel.close(),
  })
}

main({
  ...(variant
    ? {
        faults: brokenVariant(variant),
        warning: `TEST-ONLY BROKEN VARIANT ${variant}: this distributor can lose notifications`,
      }
    : {}),
  ...(crashOn ? { wrapChannel: crashingOn(crashOn) } : {}),
}).catch((error: unknown) => {
  console.error('distributor failed to start:', error)
  process.exit(1)
})
