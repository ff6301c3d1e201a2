import {join} from 'node:path'
import {iotctlHome} from '../config/index.js'
import {Flags} from './oclif.js'

export const firmwareDirFlags = {
  'keys-dir': Flags.string({description: 'directory of the firmware signing key (default: $IOTCTL_HOME/keys)', env: 'IOTCTL_KEYS_DIR'}),
  'artifact-dir': Flags.string({description: 'firmware artifact store (default: $IOTCTL_HOME/artifacts, where the dev stack serves from)', env: 'IOTCTL_ARTIFACT_DIR'}),
}

export function firmwareDirs(flags: {'keys-dir'?: string; 'artifact-dir'?: string}): {keysDir: string; artifactDir: string} {
  const home = iotctlHome()
  return {keysDir: flags['keys-dir'] ?? join(home, 'keys'), artifactDir: flags['artifact-dir'] ?? join(home, 'artifacts')}
}
