/**
 * Enforces a maximum MQTT packet size on the raw byte stream, before the broker buffers a packet:
 * it follows the fixed headers (MQTT 3.1.1 §2.2: one byte of type and flags, then the Remaining
 * Length in 1-4 bytes of 7 bits each, §2.2.3) and skips bodies, calling `violation` as soon as a
 * header announces a packet larger than `maxBytes`, or a Remaining Length longer than 4 bytes.
 */
export function packetSizeWatcher(maxBytes: number, violation: (reason: string) => void): (chunk: Buffer) => void {
  let skip = 0 // body bytes of the current packet still to pass
  let header: number[] = [] // bytes of a fixed header split across chunks
  let stopped = false
  return (chunk) => {
    let at = 0
    while (!stopped && at < chunk.length) {
      if (skip > 0) {
        const n = Math.min(skip, chunk.length - at)
        skip -= n
        at += n
        continue
      }
      header.push(chunk[at++]!)
      if (header.length === 1) continue // type and flags
      const last = header[header.length - 1]!
      if (last & 0x80) {
        if (header.length === 5) {
          stopped = true
          violation('malformed Remaining Length (more than 4 bytes)')
        }
        continue
      }
      let remaining = 0
      for (let i = header.length - 1; i >= 1; i--) remaining = remaining * 128 + (header[i]! & 0x7f)
      const total = header.length + remaining
      if (total > maxBytes) {
        stopped = true
        violation(`packet of ${total} bytes exceeds the limit of ${maxBytes}`)
        return
      }
      skip = remaining
      header = []
    }
  }
}
