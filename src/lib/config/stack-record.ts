import {readFileSync} from 'node:fs'
import {mkdir, readFile, rename, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {iotctlHome} from './home.js'

/**
 * What a running `iotctl dev up` records so that every other command finds it without flags.
 * Lives under $IOTCTL_HOME/dev/, mode 0600 (the URL carries the generated password).
 */
export interface StackRecord {
  pid: number
  startedAt: string
  databaseUrl: string
  dataDir: string
  postgres: {port: number; version?: string}
  /** identityDir: the CLI's service identity (operator.crt/.key, chain.pem) for the service listener. */
  broker?: {devicePort: number; servicePort: number; caDir: string; identityDir?: string}
  /** The firmware artifact server (HTTPS, signed URLs). */
  artifacts?: {port: number; baseUrl: string}
}

export function devDir(home = iotctlHome()): string {
  return join(home, 'dev')
}

export function stackRecordFile(home = iotctlHome()): string {
  return join(devDir(home), 'stack.json')
}

export async function readStackRecord(home = iotctlHome()): Promise<StackRecord | undefined> {
  try {
    return JSON.parse(await readFile(stackRecordFile(home), 'utf8')) as StackRecord
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || error instanceof SyntaxError) return undefined
    throw error
  }
}

export async function writeStackRecord(record: StackRecord, home = iotctlHome()): Promise<void> {
  await mkdir(devDir(home), {recursive: true, mode: 0o700})
  const file = stackRecordFile(home)
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, JSON.stringify(record, null, 2) + '\n', {mode: 0o600})
  await rename(tmp, file)
}

export async function removeStackRecord(home = iotctlHome()): Promise<void> {
  await rm(stackRecordFile(home), {force: true})
}

/**
 * Alive and not a zombie: a detached stack whose parent exited is re-parented to PID 1, and
 * where PID 1 does not reap children (containers, sandboxes) a killed stack stays a zombie that
 * still answers kill(pid, 0).
 */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return true // no procfs (macOS): trust kill(0)
  }
}
