// The shadow benchmark's world, like pki-world.mjs but from a SNAPSHOT of the build: bin/, dist/,
// package.json and the oclif manifest are copied to a temporary directory first (node_modules
// linked) and every import, the load-generator child and the CLI run from there, so a concurrent
// `npm run build` (rm -rf dist) in the same tree cannot break a run of several minutes or mix
// builds. Then one embedded PostgreSQL (session.mjs), a migrated database, and a CA in
// WORK/ca. close() undoes all of it.
import {execFileSync} from 'node:child_process'
import {access, cp, mkdir, mkdtemp, rm, stat} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'
import {getAppRoot, ROOT, useSnapshot} from './proc.mjs'
import {openSession} from './session.mjs'

export const PASSPHRASE = 'bench passphrase'

// Written last by `npm run build` (tsc, then cp of the migrations, then the manifest): when they exist, dist is complete.
const MARKERS = ['dist/lib/stack/dev-broker.js', 'dist/lib/shadow/index.js', 'dist/commands/shadow/set.js', 'dist/lib/db/migrations/0005_shadows.sql', 'oclif.manifest.json']
const exists = (path) => access(path).then(() => true, () => false)
const complete = async (root) => (await Promise.all(MARKERS.map((m) => exists(join(root, m))))).every(Boolean)

async function snapshotBuild(dir) {
  for (let attempt = 0; ; attempt++) {
    // A build in progress: wait for it (up to 2 minutes) rather than copy half of it.
    for (let waited = 0; !(await complete(ROOT)); waited += 1000) {
      if (waited >= 120_000) throw new Error('dist/ is missing or incomplete: run `npm run build` first')
      await new Promise((r) => setTimeout(r, 1000))
    }
    await rm(dir, {recursive: true, force: true})
    try {
      await useSnapshot(dir)
      if (await complete(dir)) return
    } catch {
      // the tree changed while copying
    }
    if (attempt >= 5) throw new Error('could not take a consistent copy of dist/ (a build kept replacing it)')
  }
}

/**
 * `overlay`: a directory whose files are copied over the snapshot's dist/ (e.g. lib/shadow/sync.js),
 * to measure a candidate change to the built code without touching the working tree.
 */
export async function openShadowWorld(name, {overlay} = {}) {
  const snapshot = await mkdtemp(join(tmpdir(), `iotctl-bench-${name}-build-`))
  try {
    await snapshotBuild(join(snapshot, 'app'))
    if (overlay) await cp(overlay, join(snapshot, 'app', 'dist'), {recursive: true, force: true})
  } catch (error) {
    await rm(snapshot, {recursive: true, force: true})
    throw error
  }
  const root = getAppRoot()
  const build = await describeBuild(root)
  const loadDist = (path) => import(pathToFileURL(join(root, 'dist', path)).href)
  const [{startEmbeddedPostgres}, {createPool}, {migrate}, pki] = await Promise.all([
    loadDist('lib/db/embedded.js'), loadDist('lib/db/pool.js'), loadDist('lib/db/migrate.js'), loadDist('lib/pki/index.js')])
  let session
  let db
  const close = async () => {
    await db?.pool.end().catch(() => undefined)
    await session?.close()
    await rm(snapshot, {recursive: true, force: true})
  }
  try {
    session = await openSession({dist: {startEmbeddedPostgres, createPool}})
    const work = join(session.dir, 'work')
    await mkdir(work)
    const url = await session.createDatabase(`bench_${name}`)
    db = {pool: await createPool(url, {max: 4}), url}
    await migrate(db.pool, url)
    const caDir = join(work, 'ca')
    await pki.initCa({dir: caDir, keyType: 'ec-p256', passphrase: PASSPHRASE, sans: [], force: false})
    return {session, work, root, build, loadDist, db, caDir, pki, close}
  } catch (error) {
    await close()
    throw error
  }
}

/** Which code the snapshot holds: HEAD, whether src/ differs from it, and when dist/ was built. */
async function describeBuild(root) {
  const git = (...args) => {
    try {
      return execFileSync('git', ['-C', ROOT, ...args], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore']}).trim()
    } catch {
      return ''
    }
  }
  const head = git('rev-parse', '--short', 'HEAD') || 'unknown'
  const dirty = git('status', '--porcelain', '--', 'src').split('\n').filter(Boolean).length
  const built = (await stat(join(root, 'dist', 'lib', 'shadow', 'store.js'))).mtime.toISOString().replace('T', ' ').slice(0, 16)
  return `HEAD ${head}${dirty ? ` (${dirty} files under src/ differ from it)` : ''}; dist/ built ${built} UTC`
}
