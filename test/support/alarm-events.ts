// A monasca `alarm-transitioned` event as monasca-thresh writes it to `alarm-state-transitions` (inner form),
// for tests that post or read alarm events.

export function monascaEvent(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    tenantId: 'b5e3a6c4c7e24f2e9d1c2b3a4d5e6f70',
    alarmId: '7b7b1b5e-9d6a-4a53-9a53-2f3c1a7e9f10',
    alarmDefinitionId: '0f8c2a7d-3b1e-4c5d-8e9f-a1b2c3d4e5f6',
    metrics: [
      {
        id: null,
        name: 'disk.space_used_perc',
        dimensions: { hostname: 'db-1', mount_point: '/var' },
      },
    ],
    alarmName: 'disk usage high',
    alarmDescription: '',
    oldState: 'OK',
    newState: 'ALARM',
    actionsEnabled: true,
    stateChangeReason: 'Thresholds were exceeded for the sub-alarms: avg(disk.space_used_perc) > 90.0',
    severity: 'HIGH',
    link: null,
    lifecycleState: null,
    subAlarms: [
      {
        subAlarmExpression: {
          function: 'AVG',
          metricDefinition: { name: 'disk.space_used_perc', dimensions: { hostname: 'db-1' } },
          operator: 'GT',
          threshold: 90,
          period: 60,
          periods: 1,
        },
        subAlarmState: 'ALARM',
        currentValues: [93.5],
      },
    ],
    timestamp: 1_763_000_000_000,
    ...overrides,
  }
}
