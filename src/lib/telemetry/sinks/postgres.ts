import type {Database} from '../../db/pool.js'
import {withTransaction} from '../../db/pool.js'
import type {TelemetryPoint} from '../payload.js'
import {writeTelemetry} from '../store.js'
import {SinkError, type TelemetrySink} from './types.js'

/**
 * The default sink: the existing store (raw points ON CONFLICT DO NOTHING, rollups from the rows
 * actually inserted, one transaction per batch). Every failure is retried: a lost connection, a
 * failover or a full disk all heal without iotctl's help, and the messages stay unacknowledged.
 */
export function createPostgresSink(db: Database): TelemetrySink {
  return {
    kind: 'postgres',
    async write(points: TelemetryPoint[]): Promise<number> {
      try {
        return await withTransaction(db.pool, db.url, (client) => writeTelemetry(client, points))
      } catch (error) {
        throw new SinkError('postgres', (error as Error).message, false, {cause: error})
      }
    },
    close: async () => undefined, // the pool belongs to the caller
  }
}
