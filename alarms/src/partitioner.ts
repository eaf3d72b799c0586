// The alarm partitioner lives in shared/src/alarms/partitioner.ts, where the api (whose image ships only
// shared/ and api/) can import it too; re-exported here for the alarms workspace's own imports.
export { AlarmPartitioner, alarmOfKey, alarmPartition } from '@herald/shared/alarms/partitioner'
