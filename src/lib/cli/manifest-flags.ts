import {join} from 'node:path'
import {iotctlHome, resolveCaDir} from '../config/index.js'
import {usageError} from '../core/errors.js'
import type {DeviceIssuer} from '../pki/index.js'
import type {FirmwareTools} from '../manifest/types.js'
import {firmwareDirs} from './firmware-flags.js'
import {readStdinUpTo} from './input.js'
import {Flags} from './oclif.js'
import {caPassphrase} from './pki-flags.js'

/** Defaults of MAX_MANIFEST_BYTES and MAX_ALIAS_COUNT (lib/manifest/load.ts), kept here so --help loads no manifest code. */
const DEFAULT_MAX_BYTES = 10 * 1024 * 1024
const DEFAULT_MAX_ALIASES = 100

export const manifestFlags = {
  filename: Flags.string({char: 'f', description: 'manifest file, directory, or - for stdin (repeatable)', multiple: true}),
  recursive: Flags.boolean({char: 'R', description: 'also read the subdirectories of directories given with -f'}),
  'max-file-size': Flags.integer({description: 'largest manifest file or stdin, in bytes', default: DEFAULT_MAX_BYTES, min: 1}),
  'max-aliases': Flags.integer({description: 'YAML aliases a document may expand (alias bombs)', default: DEFAULT_MAX_ALIASES, min: 0}),
}

/** The -f values as the manifest library takes them (stdin read here: oclif's allowStdin gives up after 10 ms). */
export function manifestSources(flags: {filename?: string[]; recursive?: boolean; 'max-file-size'?: number; 'max-aliases'?: number}) {
  if (!flags.filename || flags.filename.length === 0) {
    throw usageError('E_USAGE', 'no manifests given: pass -f FILE, -f DIR or -f -', {hint: 'iotctl apply -f manifests/examples/'})
  }
  const maxBytes = flags['max-file-size'] ?? DEFAULT_MAX_BYTES
  return {files: flags.filename, recursive: Boolean(flags.recursive), readStdin: () => readStdinUpTo(maxBytes), maxBytes,
    maxAliases: flags['max-aliases'] ?? DEFAULT_MAX_ALIASES, cacheDir: join(iotctlHome(), 'cache', 'manifests')}
}

/** A device issuer per lifetime, created on first use: a manifest without certificates never asks for the passphrase. */
export function lazyIssuer(flags: {'ca-dir'?: string; 'passphrase-file'?: string; context?: string}): (days: number) => Promise<DeviceIssuer> {
  let passphrase: Promise<{caDir: string; passphrase: string}> | undefined
  return async (days) => {
    passphrase ??= (async () => {
      const caDir = await resolveCaDir({caDir: flags['ca-dir'], context: flags.context})
      return {caDir, passphrase: await caPassphrase(flags['passphrase-file'], {caDir})}
    })()
    const {deviceIssuer} = await import('../pki/index.js')
    return deviceIssuer({...(await passphrase), days})
  }
}

/** The firmware signing key and artifact store for Firmware objects, on first use (same passphrase as the CA). */
export function lazyFirmwareTools(flags: {'ca-dir'?: string; 'passphrase-file'?: string; 'keys-dir'?: string; 'artifact-dir'?: string; context?: string}): () => Promise<FirmwareTools> {
  let tools: Promise<FirmwareTools> | undefined
  return () => {
    tools ??= (async () => {
      const caDir = await resolveCaDir({caDir: flags['ca-dir'], context: flags.context})
      const passphrase = await caPassphrase(flags['passphrase-file'], {caDir})
      const {FileArtifactStore, loadSigningKey} = await import('../firmware/index.js')
      const {keysDir, artifactDir} = firmwareDirs(flags)
      const signing = await loadSigningKey(keysDir, passphrase)
      return {signing: {key: signing.key, keyId: signing.keyId}, store: new FileArtifactStore(artifactDir)}
    })()
    return tools
  }
}
