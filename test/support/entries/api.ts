// Test-only entry point of the api: the production main() with a fault composed in, chosen by a variable
// that only this file reads (startService picks it when a HERALD_TEST_ variable is set).
//   HERALD_TEST_LEAK=1  the api retains memory per request (the hostile-input test's positive control)
import { main } from '../../../api/src/main.ts'

main({ leakForTests: process.env.HERALD_TEST_LEAK === '1' }).catch((error: unknown) => {
  console.error('api failed to start:', error)
  process.exit(1)
})
