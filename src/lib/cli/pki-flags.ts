import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {invalidInput, notFound} from '../core/errors.js'
import {Flags} from './oclif.js'
import {askSecret} from './prompt.js'
import {canPrompt} from './terminal.js'

export const pkiFlags = {
  'ca-dir': Flags.string({description: 'CA directory (default: the context\'s, else $IOTCTL_HOME/ca)', env: 'IOTCTL_CA_DIR'}),
  'passphrase-file': Flags.string({description: 'file holding the CA key passphrase (else IOTCTL_CA_PASSPHRASE, else a prompt)'}),
}

/**
 * The CA passphrase: --passphrase-file > IOTCTL_CA_PASSPHRASE > the dev stack's generated one
 * (CA_DIR/dev-passphrase, only for a CA that `dev up` created) > an interactive prompt. Never a
 * flag value (it would land in shell history and `ps`).
 */
export async function caPassphrase(file: string | undefined, options: {confirm?: boolean; caDir?: string} = {}): Promise<string> {
  if (file) {
    const text = await readFile(file, 'utf8').catch(() => {
      throw notFound('E_PASSPHRASE_FILE', `cannot read the passphrase file ${file}`, {hint: 'check the path and its permissions'})
    })
    return text.replace(/\r?\n$/, '')
  }
  const fromEnv = process.env.IOTCTL_CA_PASSPHRASE
  if (fromEnv) return fromEnv
  if (options.caDir) {
    const dev = await readFile(join(options.caDir, 'dev-passphrase'), 'utf8').catch(() => undefined)
    if (dev) return dev.trim()
  }
  const replacement = 'set IOTCTL_CA_PASSPHRASE or pass --passphrase-file FILE'
  const first = await askSecret('CA passphrase', replacement)
  if (options.confirm && canPrompt()) {
    const again = await askSecret('Repeat the CA passphrase', replacement)
    if (again !== first) throw invalidInput('E_PASSPHRASE_MISMATCH', 'the two passphrases differ; nothing was written', {hint: 'run it again and type the same passphrase twice'})
  }
  return first
}
