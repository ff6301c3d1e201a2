// oclif's building blocks from their own entry points: the package index loads ~50 more modules
// (ux, help, logger…) than a command needs, on every invocation.
export * as Args from '@oclif/core/args'
export {Command} from '@oclif/core/command'
export * as Flags from '@oclif/core/flags'
export type {Interfaces} from '@oclif/core'
