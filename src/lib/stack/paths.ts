import {join} from 'node:path'
import {devDir} from '../config/stack-record.js'
import {iotctlHome} from '../config/home.js'

/** Services with a log file of their own, in the order `dev logs` prints them. */
export const DEV_SERVICES = ['stack', 'postgres', 'broker', 'ingest', 'shadow', 'rollout'] as const
export type DevService = (typeof DEV_SERVICES)[number]

/** Everything `dev up` owns lives under $IOTCTL_HOME/dev/; `dev reset` removes exactly this. */
export function devPaths(home = iotctlHome()) {
  const root = devDir(home)
  return {
    root,
    pgData: join(root, 'pgdata'),
    secrets: join(root, 'postgres.json'),
    /** Rewritten every second by the running stack: its counters, and proof that it is alive. */
    heartbeat: join(root, 'heartbeat.json'),
    logs: join(root, 'logs'),
    log: (service: DevService) => join(root, 'logs', `${service}.log`),
  }
}
