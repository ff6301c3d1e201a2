#!/usr/bin/env node
// Production entry point: runs the compiled commands in dist/ through oclif.
import {execute} from '@oclif/core/execute'

await execute({dir: import.meta.url})
