// The parent side of bench/lib/connections-broker.mjs: fork it (with --expose-gc) from the app
// root and talk to it with request/response messages. kill() is safe to call at any time.
// IOTCTL_BENCH_BROKER_NODE_ARGS adds node flags to the child, e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof'.
import {fork} from 'node:child_process'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {getAppRoot, ROOT, useSnapshot} from './proc.mjs'

/**
 * The broker child starts a minute into the run: give it a copy of the build (proc.mjs
 * useSnapshot), so a concurrent `npm run build` (rm -rf dist) cannot pull dist/ away from it.
 * Returns the snapshot's dist/ and a remove() for the end of the run.
 */
export async function snapshotBuild() {
  const dir = await mkdtemp(join(tmpdir(), 'iotctl-bench-connections-app-'))
  const remove = () => rm(dir, {recursive: true, force: true})
  try {
    await useSnapshot(dir)
  } catch (error) {
    await remove()
    throw new Error(`cannot copy the build from ${join(ROOT, 'dist')} (run \`npm run build\` first): ${error.message}`)
  }
  return {dist: join(getAppRoot(), 'dist'), remove}
}

export function forkBroker({timeoutMs = 120_000} = {}) {
  const child = fork(join(ROOT, 'bench', 'lib', 'connections-broker.mjs'), [], {
    cwd: getAppRoot(), execArgv: ['--expose-gc', ...(process.env.IOTCTL_BENCH_BROKER_NODE_ARGS ?? '').split(/\s+/).filter(Boolean)], stdio: ['ignore', 'inherit', 'inherit', 'ipc']})
  const pending = new Map()
  let seq = 0
  let exited = null
  child.on('message', ({id, ok, result, error}) => {
    const p = pending.get(id)
    if (!p) return
    pending.delete(id)
    clearTimeout(p.timer)
    if (ok) p.resolve(result)
    else p.reject(new Error(`broker child: ${error}`))
  })
  child.on('exit', (code, signal) => {
    exited = {code, signal}
    for (const p of pending.values()) {
      clearTimeout(p.timer)
      p.reject(new Error(`broker child exited (${code ?? signal}) during a request`))
    }
    pending.clear()
  })
  const kill = () => {
    if (!exited) child.kill('SIGKILL')
  }
  process.once('exit', kill)
  const request = (type, body = {}) => new Promise((resolve, reject) => {
    if (exited) return reject(new Error(`broker child already exited (${exited.code ?? exited.signal})`))
    const id = ++seq
    const timer = setTimeout(() => {
      pending.delete(id)
      reject(new Error(`broker child: no answer to ${type} within ${timeoutMs} ms`))
    }, timeoutMs)
    pending.set(id, {resolve, reject, timer})
    child.send({id, type, ...body})
  })
  const stopped = new Promise((resolve) => child.once('exit', resolve))
  return {
    pid: child.pid,
    request,
    /** Graceful close (broker, pool), then wait for the exit; SIGKILL if it does not come. */
    async close() {
      if (exited) return
      await request('close').catch(() => undefined)
      const timer = setTimeout(kill, 10_000)
      await stopped
      clearTimeout(timer)
      process.off('exit', kill)
    },
    kill,
  }
}
