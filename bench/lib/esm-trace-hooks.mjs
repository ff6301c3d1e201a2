// Module customization hooks (registered by child-probe.cjs): record every ESM load.
// Hooks run on their own thread, so write synchronously: nothing is lost at process exit.
import {appendFileSync} from 'node:fs'

let out

export async function initialize(data) {
  out = data?.out
}

export async function load(url, context, nextLoad) {
  if (out) appendFileSync(out, `${url}\n`)
  return nextLoad(url, context)
}
