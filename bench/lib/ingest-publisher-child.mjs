// Child process for `npm run bench -- ingest --publishers child`: the same load generator
// (ingest-load.mjs) on its own event loop. Commands arrive over IPC, one at a time.
import mqtt from 'mqtt'
import {closePublishers, connectPublishers, publishRun} from './ingest-load.mjs'

let load
process.on('message', async ({id, cmd, args}) => {
  try {
    let result
    if (cmd === 'connect') {
      load = await connectPublishers({mqtt, ...args})
      result = {connectMs: load.connectMs}
    } else if (cmd === 'run') {
      result = await publishRun(load, args)
    } else if (cmd === 'close') {
      await closePublishers(load)
      load = undefined
      result = {}
    } else {
      throw new Error(`unknown command ${cmd}`)
    }
    process.send({id, result})
  } catch (error) {
    process.send({id, error: String(error?.stack ?? error)})
  }
})
process.on('disconnect', () => process.exit(0))
