import {Flags} from './oclif.js'

const GROUP = 'TELEMETRY SINK'

/**
 * Where `serve` and `dev up` store telemetry, and the InfluxDB endpoint (also for `telemetry setup
 * influx` and `telemetry query`). Each has an IOTCTL_* variable; unset ones come from the context.
 * The token is never printed: not in output, logs or errors.
 */
export const influxFlags = {
  'influx-url': Flags.string({description: 'InfluxDB URL (http(s)://host:8086; anything serving /api/v2/write)', env: 'IOTCTL_INFLUX_URL', helpGroup: GROUP}),
  'influx-token': Flags.string({description: 'InfluxDB API token (prefer the variable: a flag shows in `ps`)', env: 'IOTCTL_INFLUX_TOKEN', helpGroup: GROUP}),
  'influx-org': Flags.string({description: 'InfluxDB organization', env: 'IOTCTL_INFLUX_ORG', helpGroup: GROUP}),
  'influx-bucket': Flags.string({description: 'InfluxDB bucket of raw points (rollups go to BUCKET_1m, _1h, _1d)', env: 'IOTCTL_INFLUX_BUCKET', helpGroup: GROUP}),
}

export const telemetrySinkFlags = {
  'telemetry-sink': Flags.string({description: 'where telemetry goes: postgres, influx, or postgres,influx (default: the context\'s, else postgres)', env: 'IOTCTL_TELEMETRY_SINK', helpGroup: GROUP}),
  ...influxFlags,
  'influx-labels': Flags.string({description: 'device labels written as InfluxDB tags besides device and type (comma-separated)', env: 'IOTCTL_INFLUX_LABELS', helpGroup: GROUP}),
}

export interface SinkFlagValues {
  'telemetry-sink'?: string
  'influx-url'?: string
  'influx-token'?: string
  'influx-org'?: string
  'influx-bucket'?: string
  'influx-labels'?: string
}
