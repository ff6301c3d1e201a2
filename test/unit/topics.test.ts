import {describe, expect, it} from 'vitest'
import {deviceSubscribeAllowed, devicePublishAllowed, serviceTopicAllowed} from '../../src/lib/mqtt/topics.js'

describe('device topic contract (DESIGN.md §3)', () => {
  it.each([
    ['devices/d1/telemetry', true],
    ['devices/d1/status', true],
    ['devices/d1/commands/ack', true],
    ['devices/d1/shadow/update', true],
    ['devices/d1/shadow/get', true],
    ['devices/d1/ota/progress', true],
    ['devices/d1/commands', false], // cloud → device only
    ['devices/d1/shadow/delta', false],
    ['devices/d1/firmware', false],
    ['devices/d2/telemetry', false], // another device
    ['devices/d1/telemetry/extra', false],
    ['devices/d1/#', false],
    ['devices/+/telemetry', false],
    ['$SYS/broker/clients', false],
    ['devices/D1/telemetry', false],
    ['other/d1/telemetry', false],
    ['', false],
  ])('publish %s → %s', (topic, allowed) => {
    expect(devicePublishAllowed('d1', topic)).toBe(allowed)
  })

  it.each([
    ['devices/d1/commands', true],
    ['devices/d1/shadow/delta', true],
    ['devices/d1/firmware', true],
    ['devices/d1/shadow/update/accepted', true],
    ['devices/d1/shadow/update/rejected', true],
    ['devices/d1/shadow/get/accepted', true],
    ['devices/d1/telemetry', false], // device → cloud only
    ['devices/d2/commands', false],
    ['devices/+/commands', false],
    ['devices/d1/#', false],
    ['#', false],
    ['$SYS/#', false],
    ['$share/g/devices/d1/commands', false],
  ])('subscribe %s → %s', (filter, allowed) => {
    expect(deviceSubscribeAllowed('d1', filter)).toBe(allowed)
  })

  it('services may use the device tree and iotctl shared subscriptions, not other $ topics', () => {
    expect(serviceTopicAllowed('devices/+/telemetry')).toBe(true)
    expect(serviceTopicAllowed('$share/iotctl-ingest/devices/+/telemetry')).toBe(true)
    expect(serviceTopicAllowed('$SYS/#')).toBe(false)
  })
})
