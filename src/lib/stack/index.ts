export {startDevStack, type RunningStack} from './dev-up.js'
export {devDown, devReset, devStatus, runningStack, startDetached, type DevStatus} from './dev-control.js'
export {assertService, devLogs} from './dev-logs.js'
export {DEV_SERVICES, devPaths} from './paths.js'
