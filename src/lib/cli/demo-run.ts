import {fileURLToPath} from 'node:url'
import {iotctlHome} from '../config/index.js'
import type {Database} from '../db/pool.js'
import type {DemoResult} from '../stack/demo.js'
import type {RunningStack} from '../stack/index.js'
import {lazyFirmwareTools, lazyIssuer} from './manifest-flags.js'

/** manifests/demo/ of this package (dist/lib/cli → the package root). */
export const DEMO_MANIFESTS = fileURLToPath(new URL('../../../manifests/demo/', import.meta.url))

/**
 * Wire the demo runner (lib/stack/demo.ts) to the stack, the database and the manifest apply: the
 * composition lives here because it joins three domains, and commands stay thin.
 */
export async function runDemoCommand(o: {startStack: () => Promise<RunningStack>; timeoutMs: number; live: boolean; write: (text: string) => void; signal: AbortSignal}): Promise<DemoResult> {
  const [{runDemo}, {createPool}, {applyManifests}] = await Promise.all([import('../stack/demo.js'), import('../db/pool.js'), import('../manifest/index.js')])
  const flags = {}
  const apply = async (db: Database, dir: string) => {
    const result = await applyManifests(db, {files: [dir], recursive: false, readStdin: () => Promise.resolve(Buffer.alloc(0)), dryRun: false, prune: false, issuer: lazyIssuer(flags), firmware: lazyFirmwareTools(flags)})
    // 200 devices are one line; every other object its own, as kubectl prints them.
    const counts = new Map<string, number>()
    const lines: string[] = []
    for (const c of result.changes) {
      if (c.kind !== 'Device') lines.push(`${c.ref} ${c.result}`)
      else counts.set(c.result, (counts.get(c.result) ?? 0) + 1)
    }
    return [...[...counts].map(([word, n]) => `${n} device${n === 1 ? '' : 's'} ${word}`), ...lines]
  }
  let liveShown = false
  return runDemo({
    home: iotctlHome(), manifestsDir: DEMO_MANIFESTS, timeoutMs: o.timeoutMs, startStack: o.startStack, signal: o.signal, apply,
    openDatabase: async (url) => {
      const pool = await createPool(url, {max: 4})
      return {pool, url, close: () => pool.end()}
    },
    progress: {
      line: (text) => {
        if (liveShown) o.write('\n')
        liveShown = false
        o.write(`${text}\n`)
      },
      ...(o.live ? {live: (text: string) => {
        liveShown = true
        o.write(`\r\u001B[2K${text}`)
      }} : {}),
    },
  })
}
