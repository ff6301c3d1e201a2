import {createPublicKey, type KeyObject} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import {invalidInput} from '../core/errors.js'
import {keyIdOf} from '../firmware/index.js'

/**
 * The firmware signing public key the simulated devices trust (SubjectPublicKeyInfo PEM), or
 * undefined when the file does not exist: a fleet without a trusted key still runs, and refuses
 * every assignment (bad-signature). A file that is there but is not a public key is an error.
 */
export async function loadTrustedFirmwareKey(file: string): Promise<{key: KeyObject; keyId: string} | undefined> {
  let pem: string
  try {
    pem = await readFile(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
  let key: KeyObject
  try {
    key = createPublicKey(pem)
  } catch (error) {
    throw invalidInput('E_FIRMWARE_KEY', `${file} is not a public key in PEM`, {hint: 'pass the firmware-signing.pub written by `iotctl keys init`', cause: error})
  }
  if (key.asymmetricKeyType !== 'ed25519' && !(key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1')) {
    throw invalidInput('E_FIRMWARE_KEY', `${file} is a ${key.asymmetricKeyType} key; firmware is signed with ECDSA P-256 or Ed25519`, {hint: 'pass the firmware-signing.pub written by `iotctl keys init`'})
  }
  return {key, keyId: keyIdOf(key)}
}
