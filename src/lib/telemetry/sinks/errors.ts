import {unavailable, type IotctlError} from '../../core/errors.js'
import type {SinkError} from './types.js'

/** A sink that refused for good, as the exit-6 error the command ends with. */
export function sinkStopped(error: SinkError): IotctlError {
  return unavailable(`E_${error.sink.toUpperCase()}_REFUSED`, `telemetry sink ${error.sink} stopped: ${error.message}`, {
    hint: error.hint ?? 'fix the sink\'s settings and restart; unacknowledged messages are redelivered by the devices',
    data: {sink: error.sink, ...(error.status === undefined ? {} : {status: error.status})},
    cause: error,
  })
}

/** A failed InfluxDB call outside the ingest (setup, query): exit 6 with the server's reason. */
export function influxFailed(error: SinkError, doing: string): IotctlError {
  return unavailable(error.permanent ? 'E_INFLUX_REFUSED' : 'E_INFLUX_UNAVAILABLE', `${doing}: ${error.message}`, {
    hint: error.hint ?? 'check --influx-url and that InfluxDB 2.x is running (VictoriaMetrics and other write-only endpoints serve no Flux)',
    data: error.status === undefined ? undefined : {status: error.status},
    cause: error,
  })
}
