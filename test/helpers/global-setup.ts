import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type {TestProject} from 'vitest/node'
import {startEmbeddedPostgres} from '../../src/lib/db/embedded.js'

declare module 'vitest' {
  export interface ProvidedContext {
    /** A superuser URL; each test file creates its own database from it. */
    adminDatabaseUrl: string
  }
}

/**
 * One real PostgreSQL for the whole run: IOTCTL_TEST_DATABASE_URL if set (a superuser URL),
 * otherwise the same embedded server `iotctl dev up` uses, in a temporary directory.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.IOTCTL_TEST_DATABASE_URL
  if (external) {
    project.provide('adminDatabaseUrl', external)
    return async () => undefined
  }
  const dir = await mkdtemp(join(tmpdir(), 'iotctl-test-pg-'))
  const server = await startEmbeddedPostgres({dataDir: join(dir, 'data'), port: 0, database: 'postgres'})
  project.provide('adminDatabaseUrl', server.url)
  return async () => {
    await server.stop()
    await rm(dir, {recursive: true, force: true})
  }
}
