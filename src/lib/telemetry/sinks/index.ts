import type {Database} from '../../db/pool.js'
import {usageError} from '../../core/errors.js'
import {createPostgresSink} from './postgres.js'
import {sinkStopped} from './errors.js'
import {SINK_KINDS, type InfluxSettings, type SinkKind, type TelemetrySink} from './types.js'

export {SINK_KINDS, SinkError, parseSinkKinds, type InfluxSettings, type SinkKind, type TelemetrySink} from './types.js'
export {sinkStopped} from './errors.js'
export {createPostgresSink} from './postgres.js'
export {toLineProtocol, MEASUREMENT, type DeviceTags} from './line-protocol.js'

/** What `--telemetry-sink` chose, with the InfluxDB endpoint when `influx` is among them. */
export interface SinkSelection {
  kinds: SinkKind[]
  influx?: InfluxSettings
}

const INFLUX_FLAGS: Array<[keyof InfluxSettings, string]> = [['url', '--influx-url'], ['token', '--influx-token'], ['org', '--influx-org'], ['bucket', '--influx-bucket']]

/** Everything that can be wrong with a selection, before any connection is made. */
export function checkSinkSelection(selection: SinkSelection): void {
  if (!selection.kinds.includes('influx')) return
  const missing = INFLUX_FLAGS.filter(([key]) => !selection.influx?.[key]).map(([, flag]) => flag)
  if (missing.length > 0) {
    throw usageError('E_INFLUX_SETTINGS', `the influx telemetry sink needs ${missing.join(', ')}`, {
      hint: 'pass them (or IOTCTL_INFLUX_URL, IOTCTL_INFLUX_TOKEN, IOTCTL_INFLUX_ORG, IOTCTL_INFLUX_BUCKET), or store them in the context with `iotctl config set-context NAME --influx-url …`',
    })
  }
  if (!/^https?:\/\//.test(selection.influx!.url)) {
    throw usageError('E_INFLUX_SETTINGS', `--influx-url must be http:// or https://, not ${JSON.stringify(selection.influx!.url.split(':')[0])}`, {hint: 'e.g. http://influx.example.com:8086'})
  }
}

/**
 * Open the chosen sinks, PostgreSQL first (its count of new points is the ingest's `inserted`).
 * The InfluxDB sink is checked with an empty write first: a bad token or an unknown bucket ends
 * the start with exit 6 and the server's reason.
 */
export async function openSinks(selection: SinkSelection, db: Database, log: (line: string) => void): Promise<TelemetrySink[]> {
  checkSinkSelection(selection)
  const sinks: TelemetrySink[] = []
  for (const kind of SINK_KINDS.filter((k) => selection.kinds.includes(k))) {
    if (kind === 'postgres') {
      sinks.push(createPostgresSink(db))
      continue
    }
    const {checkInfluxWrite, createInfluxSink} = await import('./influx.js')
    const refused = await checkInfluxWrite(selection.influx!)
    if (refused) throw sinkStopped(refused)
    sinks.push(await createInfluxSink(selection.influx!, {db, log}))
  }
  return sinks
}
