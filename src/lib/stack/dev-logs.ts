import {createReadStream} from 'node:fs'
import {stat} from 'node:fs/promises'
import {iotctlHome} from '../config/home.js'
import {invalidInput} from '../core/errors.js'
import {DEV_SERVICES, devPaths, type DevService} from './paths.js'

export function assertService(name: string): DevService {
  if (!(DEV_SERVICES as readonly string[]).includes(name)) {
    throw invalidInput('E_SERVICE', `unknown service ${JSON.stringify(name)}: the dev stack has ${DEV_SERVICES.join(', ')}`, {
      hint: `name one of them (\`iotctl dev logs broker -f\`), or none for all`,
    })
  }
  return name as DevService
}

async function sizeOf(file: string): Promise<number> {
  return stat(file).then((s) => s.size, () => 0)
}

async function copyRange(file: string, start: number, end: number, write: (chunk: string) => void): Promise<void> {
  if (end <= start) return
  for await (const chunk of createReadStream(file, {start, end: end - 1, encoding: 'utf8'})) write(chunk as string)
}

/**
 * Print a service's log (all services one after the other, each line prefixed, when none is named). With `follow`, keep
 * printing what is appended until `signal` aborts (Ctrl-C), like `tail -f`.
 */
export async function devLogs(options: {service?: DevService; follow: boolean; write: (chunk: string) => void; signal?: AbortSignal; home?: string}): Promise<void> {
  const paths = devPaths(options.home ?? iotctlHome())
  const services = options.service ? [options.service] : [...DEV_SERVICES]
  const prefix = (service: DevService) => (chunk: string) =>
    options.write(options.service ? chunk : chunk.replace(/^(?=.)/gm, `[${service}] `))
  const offsets = new Map<DevService, number>()
  for (const service of services) {
    const file = paths.log(service)
    const size = await sizeOf(file)
    await copyRange(file, 0, size, prefix(service))
    offsets.set(service, size)
  }
  while (options.follow && !options.signal?.aborted) {
    await new Promise((r) => setTimeout(r, 250))
    for (const service of services) {
      const file = paths.log(service)
      const size = await sizeOf(file)
      const from = offsets.get(service) ?? 0
      await copyRange(file, size < from ? 0 : from, size, prefix(service)) // a shrunk file was reset
      offsets.set(service, size)
    }
  }
}
