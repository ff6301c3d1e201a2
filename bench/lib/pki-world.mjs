// The common start of benchmarks that need certificates: one embedded PostgreSQL (session.mjs), a
// migrated database, and a CA in a temporary directory. close() undoes all of it.
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {ROOT} from './proc.mjs'
import {openSession} from './session.mjs'

export const PASSPHRASE = 'bench passphrase'
export const loadDist = (path) => import(join(ROOT, 'dist', path))

export async function openPkiWorld(name, {poolSize = 2} = {}) {
  const [{startEmbeddedPostgres}, {createPool}, {migrate}, pki] = await Promise.all([
    loadDist('lib/db/embedded.js'), loadDist('lib/db/pool.js'), loadDist('lib/db/migrate.js'), loadDist('lib/pki/index.js')])
  const session = await openSession({dist: {startEmbeddedPostgres, createPool}})
  const work = await mkdtemp(join(tmpdir(), `iotctl-bench-${name}-`))
  const close = async () => {
    await session.close()
    await rm(work, {recursive: true, force: true})
  }
  try {
    const url = await session.createDatabase(`bench_${name}`)
    const db = {pool: await createPool(url, {max: poolSize}), url}
    await migrate(db.pool, url)
    const caDir = join(work, 'ca')
    await pki.initCa({dir: caDir, keyType: 'ec-p256', passphrase: PASSPHRASE, sans: [], force: false})
    return {session, work, db, caDir, pki, close}
  } catch (error) {
    await close()
    throw error
  }
}
