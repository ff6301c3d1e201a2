// Child process of `npm run bench -- shadow` (--load child, the default): the devices and the
// operator side (shadow-load.mjs) on their own event loop. Commands arrive over IPC, one at a time.
import {createLoad} from './shadow-load.mjs'

let load
process.on('message', async ({id, cmd, args}) => {
  try {
    let result
    if (cmd === 'init') {
      load = await createLoad(...args)
      result = {pid: process.pid}
    } else if (typeof load?.[cmd] === 'function') {
      result = await load[cmd](...args)
    } else {
      throw new Error(`unknown command ${cmd}`)
    }
    process.send({id, result})
  } catch (error) {
    process.send({id, error: String(error?.stack ?? error)})
  }
})
process.on('disconnect', () => process.exit(0))
