import {isDeviceId} from '../core/device-id.js'

/**
 * The device topic contract (DESIGN.md §3, docs/PROTOCOL.md). Everything a device may do lives
 * under devices/{id}/ in the listed direction; anything else is denied. Pure: no MQTT library here.
 */
export const DEVICE_PUBLISHES = ['telemetry', 'status', 'commands/ack', 'shadow/update', 'shadow/get', 'ota/progress'] as const
export const DEVICE_RECEIVES = [
  'commands', 'shadow/delta', 'firmware',
  'shadow/update/accepted', 'shadow/update/rejected', 'shadow/get/accepted', 'shadow/get/rejected',
] as const

export const deviceTopic = (deviceId: string, leaf: string) => `devices/${deviceId}/${leaf}`

/** `devices/{id}/{leaf}` → its parts, or undefined for anything outside the device tree. */
export function parseDeviceTopic(topic: string): {deviceId: string; leaf: string} | undefined {
  const match = /^devices\/([^/]+)\/(.+)$/.exec(topic)
  if (!match || !isDeviceId(match[1]!)) return undefined
  return {deviceId: match[1]!, leaf: match[2]!}
}

/** MQTT 3.1.1 §4.7.1: wildcards are never valid in a topic name, and `$` topics are the server's. */
const hasWildcard = (topic: string) => topic.includes('+') || topic.includes('#')

export function devicePublishAllowed(deviceId: string, topic: string): boolean {
  if (hasWildcard(topic) || topic.startsWith('$')) return false
  const parsed = parseDeviceTopic(topic)
  return parsed?.deviceId === deviceId && (DEVICE_PUBLISHES as readonly string[]).includes(parsed.leaf)
}

/**
 * A device subscribes to exact cloud → device topics of its own subtree. Wildcard filters are
 * refused: `devices/+/commands` would reach every device, and even `devices/{id}/#` would mix
 * directions; refusing keeps the check exact (§4.7.2: `$` topics are not matched by wildcards anyway).
 */
export function deviceSubscribeAllowed(deviceId: string, filter: string): boolean {
  if (hasWildcard(filter) || filter.startsWith('$')) return false
  const parsed = parseDeviceTopic(filter)
  return parsed?.deviceId === deviceId && (DEVICE_RECEIVES as readonly string[]).includes(parsed.leaf)
}

/** Service identities (ingest, controller, CLI) work on the device tree, never on `$` topics. */
export function serviceTopicAllowed(topicOrFilter: string): boolean {
  return !topicOrFilter.startsWith('$') || topicOrFilter.startsWith('$share/iotctl-')
}
