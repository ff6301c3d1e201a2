import {resolveCaDir} from '../config/index.js'
import {usageError} from '../core/errors.js'
import type {DeviceIssuer} from '../pki/index.js'
import {readStdinUpTo} from './input.js'
import {Flags} from './oclif.js'
import {caPassphrase} from './pki-flags.js'

/** Manifests are at most 10 MiB per file (MAX_MANIFEST_BYTES in lib/manifest/load.ts). */
const MAX_STDIN_BYTES = 10 * 1024 * 1024

export const manifestFlags = {
  filename: Flags.string({char: 'f', description: 'manifest file, directory, or - for stdin (repeatable)', multiple: true}),
  recursive: Flags.boolean({char: 'R', description: 'also read the subdirectories of directories given with -f'}),
}

/** The -f values as the manifest library takes them (stdin read here: oclif's allowStdin gives up after 10 ms). */
export function manifestSources(flags: {filename?: string[]; recursive?: boolean}) {
  if (!flags.filename || flags.filename.length === 0) {
    throw usageError('E_USAGE', 'no manifests given: pass -f FILE, -f DIR or -f -', {hint: 'iotctl apply -f manifests/examples/'})
  }
  return {files: flags.filename, recursive: Boolean(flags.recursive), readStdin: () => readStdinUpTo(MAX_STDIN_BYTES)}
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
