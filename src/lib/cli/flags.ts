import {Flags} from './oclif.js'
import {OUTPUT_FORMATS} from './output.js'

const GLOBAL = 'GLOBAL'

/** The global flags of DESIGN.md §6; each has an IOTCTL_* variable (flag > env > context > defaults). */
export const globalFlags = {
  context: Flags.string({description: 'context from $IOTCTL_HOME/config.yaml to use', env: 'IOTCTL_CONTEXT', helpGroup: GLOBAL}),
  output: Flags.string({char: 'o', description: 'output format', options: [...OUTPUT_FORMATS], env: 'IOTCTL_OUTPUT', helpGroup: GLOBAL}),
  json: Flags.boolean({description: 'same as -o json: a {status, result, warnings} envelope on stdout', env: 'IOTCTL_JSON', helpGroup: GLOBAL}),
  'database-url': Flags.string({description: 'PostgreSQL URL (default: the running dev stack)', env: 'IOTCTL_DATABASE_URL', helpGroup: GLOBAL}),
  'broker-url': Flags.string({description: 'MQTT broker URL', env: 'IOTCTL_BROKER_URL', helpGroup: GLOBAL}),
  yes: Flags.boolean({char: 'y', description: 'answer yes to confirmations (needed without a terminal)', env: 'IOTCTL_YES', helpGroup: GLOBAL}),
  debug: Flags.boolean({description: 'print stack traces and internal details on errors', env: 'IOTCTL_DEBUG', helpGroup: GLOBAL}),
}
