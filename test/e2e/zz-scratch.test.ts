import {it} from 'vitest'
import {readFileSync} from 'node:fs'
import {freshDatabase} from '../helpers/database.js'
import {runCli, tempHome} from '../helpers/cli.js'
it('timing', async () => {
  const db = await freshDatabase()
  console.log(Object.keys(process.env).filter(k => /NODE|VITE|TEST/.test(k)).map(k => k + '=' + process.env[k]).join('\n'))
  for (const url of [db.url, readFileSync('/tmp/scratch/url', 'utf8')]) {
  const env = {IOTCTL_HOME: await tempHome(), IOTCTL_DATABASE_URL: url}
  for (const args of [['--version'], ['devices','list','--json'], ['devices','list','--json']]) {
    const t = Date.now(); const r = await runCli(args, {env}); console.log(args.join(' '), Date.now() - t, 'ms', r.code, r.stderr.slice(0, 200))
  }
  }
  await db.drop()
})
