import {homedir} from 'node:os'
import {join, resolve} from 'node:path'

/** The state directory: contexts, the dev stack's data and (later) CA files live under it. */
export function iotctlHome(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.IOTCTL_HOME
  return fromEnv && fromEnv.trim() !== '' ? resolve(fromEnv) : join(homedir(), '.iotctl')
}

export function configFile(home = iotctlHome()): string {
  return join(home, 'config.yaml')
}
