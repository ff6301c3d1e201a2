'use strict'
// Preloaded into a CLI child with `node --require bench/lib/child-probe.cjs bin/run.js …`.
// At exit it appends one JSON line to $IOTCTL_BENCH_PROBE_OUT: the child's own peak RSS
// (process.resourceUsage().maxRSS, KiB), its CPU time (user + system, ms: much less affected than wall
// time by other load on the machine) and, when IOTCTL_BENCH_PROBE_MODULES=1, every module
// it loaded: CommonJS from require.cache, ESM from a loader hook (esm-trace-hooks.mjs) that
// writes each URL to `$IOTCTL_BENCH_PROBE_OUT.esm` as it is loaded.
const fs = require('node:fs')
const path = require('node:path')
const {pathToFileURL} = require('node:url')

const out = process.env.IOTCTL_BENCH_PROBE_OUT
const traceModules = process.env.IOTCTL_BENCH_PROBE_MODULES === '1'

if (out) {
  if (traceModules) {
    require('node:module').register(pathToFileURL(path.join(__dirname, 'esm-trace-hooks.mjs')).href, {
      data: {out: `${out}.esm`},
    })
  }
  process.on('exit', (code) => {
    const usage = process.resourceUsage()
    const record = {pid: process.pid, code, maxRSSKiB: usage.maxRSS, cpuMs: (usage.userCPUTime + usage.systemCPUTime) / 1000}
    if (traceModules) record.cjs = Object.keys(require.cache)
    fs.appendFileSync(out, JSON.stringify(record) + '\n')
  })
}
