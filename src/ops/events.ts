import { channel } from 'node:diagnostics_channel'

/**
 * Domain events that metrics count, published without the domain knowing about metrics: a
 * `node:diagnostics_channel` channel per event, which each metrics registry of the process
 * subscribes to (src/ops/metrics.ts). Publishing with no subscriber costs nothing.
 */
export const CLONE_ALARMS = channel('certbound:clone-alarm')

/**
 * Counts a detected clone (two holders of one lineage: `lineage.clone_detected`) in
 * `certbound_clone_alarms_total`. Call it once per detection, after its transaction committed.
 */
export function countCloneAlarm(): void {
  if (CLONE_ALARMS.hasSubscribers) CLONE_ALARMS.publish(1)
}
