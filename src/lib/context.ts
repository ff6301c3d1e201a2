import type {Database} from './db/pool.js'
import {requireDatabaseUrl, resolveEndpoints, type EndpointFlags, type Endpoints} from './config/resolve.js'

export type {Database} from './db/pool.js'

/**
 * The one place that wires adapters together, lazily: a command that never touches the
 * database never loads `pg`, and the first one that does gets a migrated schema.
 */
export class AppContext {
  private endpointsPromise?: Promise<Endpoints>
  private databasePromise?: Promise<Database>

  constructor(private readonly flags: EndpointFlags) {}

  endpoints(): Promise<Endpoints> {
    this.endpointsPromise ??= resolveEndpoints(this.flags)
    return this.endpointsPromise
  }

  database(): Promise<Database> {
    this.databasePromise ??= this.openDatabase()
    return this.databasePromise
  }

  private async openDatabase(): Promise<Database> {
    const url = requireDatabaseUrl(await this.endpoints())
    const {createPool} = await import('./db/pool.js')
    const {migrate} = await import('./db/migrate.js')
    const pool = await createPool(url)
    try {
      await migrate(pool, url)
    } catch (error) {
      await pool.end().catch(() => undefined)
      throw error
    }
    return {pool, url}
  }

  async close(): Promise<void> {
    if (!this.databasePromise) return
    const db = await this.databasePromise.catch(() => undefined)
    this.databasePromise = undefined
    await db?.pool.end()
  }
}
