import {parseDeviceTopic} from '../mqtt/topics.js'
import type {RolloutController} from '../rollout/index.js'
import type {ShadowService} from '../shadow/index.js'
import {parseStatus, type TelemetryService} from '../telemetry/index.js'

/**
 * Where a device's message goes, for the embedded broker's publish path and for the services'
 * session on an external broker alike: shadow topics to the shadow sync, ota/progress to the rollout
 * controller, the rest (telemetry, status) to the ingest. A device announces itself online after it
 * subscribed (PROTOCOL.md), so an online status is when its open assignments (and, without the
 * embedded broker's presence events, its shadow delta) can reach it.
 */
export function deviceMessageRouter(services: {telemetry?: TelemetryService; shadow?: ShadowService; rollouts?: RolloutController; shadowOnStatus: boolean}) {
  const {telemetry, shadow, rollouts} = services
  return async (topic: string, payload: Buffer): Promise<void> => {
    const parsed = parseDeviceTopic(topic)
    if (!parsed) return
    if (parsed.leaf.startsWith('shadow/')) return shadow?.handle(topic, payload)
    if (parsed.leaf === 'ota/progress') return rollouts?.handleProgress(parsed.deviceId, payload)
    await telemetry?.handle(topic, payload)
    if (parsed.leaf === 'status' && parseStatus(payload) === 'active') {
      if (shadow && services.shadowOnStatus) await shadow.deviceOnline(parsed.deviceId)
      if (rollouts) void rollouts.deviceOnline(parsed.deviceId)
    }
  }
}
