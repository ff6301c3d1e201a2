// Spawn the real CLI (or plain node) as a child, timed with process.hrtime from spawn to 'close'.
// Every live child is tracked so an interrupted benchmark can kill what it started.
import {spawn} from 'node:child_process'
import {cp, mkdir, readFile, rm, symlink} from 'node:fs/promises'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {msSince} from './stats.mjs'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const BIN = 'bin/run.js'
const PROBE = join(ROOT, 'bench', 'lib', 'child-probe.cjs')

/** Where children run (`node bin/run.js` resolves against it): the project, or a snapshot of its build. */
let appRoot = ROOT
export const getAppRoot = () => appRoot

/**
 * Copy the built CLI (bin/, dist/, package.json, oclif.manifest.json; node_modules linked) to
 * `dir` and run every child from there, so a concurrent `npm run build` (rm -rf dist) cannot break
 * or mix builds in a long run. The same code runs; only its path differs.
 */
export async function useSnapshot(dir) {
  await mkdir(dir, {recursive: true})
  for (const entry of ['bin', 'dist', 'package.json', 'oclif.manifest.json']) {
    await cp(join(ROOT, entry), join(dir, entry), {recursive: true})
  }
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir')
  appRoot = dir
}

const live = new Set()
let probeCounter = 0

export function killChildren() {
  for (const child of live) child.kill('SIGKILL')
}

/**
 * Run `node ARGS…` in the project root. `probe: {dir, modules}` preloads child-probe.cjs and
 * returns its record (peak RSS, and loaded modules when `modules`).
 */
export async function runNode(args, {env = process.env, timeoutMs = 600_000, probe} = {}) {
  let probeOut
  let nodeArgs = args
  let childEnv = env
  if (probe) {
    probeOut = join(probe.dir, `probe-${process.pid}-${++probeCounter}.jsonl`)
    nodeArgs = ['--require', PROBE, ...args]
    childEnv = {...env, IOTCTL_BENCH_PROBE_OUT: probeOut, IOTCTL_BENCH_PROBE_MODULES: probe.modules ? '1' : '0'}
  }
  const result = await new Promise((resolve, reject) => {
    const start = process.hrtime.bigint()
    const child = spawn(process.execPath, nodeArgs, {cwd: appRoot, env: childEnv, stdio: ['ignore', 'pipe', 'pipe']})
    live.add(child)
    const stdout = []
    const stderr = []
    child.stdout.on('data', (d) => stdout.push(d))
    child.stderr.on('data', (d) => stderr.push(d))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', (error) => {
      live.delete(child)
      clearTimeout(timer)
      reject(error)
    })
    child.on('close', (code, signal) => {
      const ms = msSince(start)
      live.delete(child)
      clearTimeout(timer)
      resolve({code, signal, ms, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8')})
    })
  })
  if (probeOut) {
    result.probe = await readProbe(probeOut)
    await rm(probeOut, {force: true})
    await rm(`${probeOut}.esm`, {force: true})
  }
  return result
}

async function readProbe(file) {
  const text = await readFile(file, 'utf8').catch(() => '')
  const record = text.trim() ? JSON.parse(text.trim().split('\n').at(-1)) : {}
  if (record.cjs) {
    const esm = (await readFile(`${file}.esm`, 'utf8').catch(() => '')).split('\n').filter(Boolean)
    const files = new Set(record.cjs)
    for (const url of esm) if (url.startsWith('file:')) files.add(fileURLToPath(url))
    record.modules = [...files].sort()
    delete record.cjs
  }
  return record
}

/** Run a CLI command and fail loudly when it does not exit 0. */
export async function runCli(args, options) {
  const result = await runNode([BIN, ...args], options)
  if (result.code !== 0) {
    throw new Error(`\`node ${BIN} ${args.join(' ')}\` exited ${result.code ?? result.signal}:\n${result.stderr.slice(-2000)}`)
  }
  return result
}

/** The package a module path belongs to (`@scope/name` or `name`), or null outside node_modules. */
export function packageOf(path) {
  const i = path.lastIndexOf('/node_modules/')
  if (i < 0) return null
  const parts = path.slice(i + '/node_modules/'.length).split('/')
  return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]
}
