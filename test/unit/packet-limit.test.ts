import mqttPacket from 'mqtt-packet'
import {describe, expect, it} from 'vitest'
import {packetSizeWatcher} from '../../src/lib/broker/packet-limit.js'

const publish = (bytes: number) => mqttPacket.generate({cmd: 'publish', topic: 'devices/d/telemetry', payload: Buffer.alloc(bytes), qos: 0, retain: false, dup: false} as never)

function feed(max: number, chunks: Buffer[]): string[] {
  const violations: string[] = []
  const watch = packetSizeWatcher(max, (reason) => violations.push(reason))
  for (const chunk of chunks) watch(chunk)
  return violations
}

describe('MQTT packet size limit on the byte stream (§2.2.3)', () => {
  it('passes packets up to the limit, across arbitrary chunk boundaries', () => {
    const stream = Buffer.concat([publish(10), publish(60_000), publish(0), publish(65_000)])
    for (const size of [1, 2, 3, 7, 1000, stream.length]) {
      const chunks: Buffer[] = []
      for (let i = 0; i < stream.length; i += size) chunks.push(stream.subarray(i, i + size))
      expect(feed(64 * 1024, chunks), `chunk size ${size}`).toEqual([])
    }
  })

  it('stops at the header of a larger packet, before its body arrives', () => {
    const big = publish(70_000)
    expect(feed(64 * 1024, [Buffer.concat([publish(10), big.subarray(0, 5)])])).toEqual([expect.stringMatching(/exceeds the limit of 65536/)])
  })

  it('refuses a Remaining Length of more than 4 bytes', () => {
    expect(feed(1 << 30, [Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])])).toEqual(['malformed Remaining Length (more than 4 bytes)'])
  })
})
