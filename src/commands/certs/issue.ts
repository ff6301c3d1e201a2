import {resolve} from 'node:path'
import {BaseCommand} from '../../lib/cli/base-command.js'
import {readInputBytes} from '../../lib/cli/input.js'
import {Args, Flags} from '../../lib/cli/oclif.js'
import {caPassphrase, pkiFlags} from '../../lib/cli/pki-flags.js'
import {certificateColumns} from '../../lib/cli/views/certs.js'
import {resolveCaDir} from '../../lib/config/index.js'
import {usageError} from '../../lib/core/errors.js'
import {DEFAULT_DAYS, issueDeviceCertificates, issueOperatorCertificate, writeIssued, type IssuedCertificate} from '../../lib/pki/index.js'

export default class CertsIssue extends BaseCommand<typeof CertsIssue> {
  static override description = `Issue a device certificate (CN = device id, clientAuth) from the device CA, or a service identity with --operator

Without --csr, iotctl generates an EC P-256 key. Files: device.key (0600), device.crt, chain.pem in --out
(default ./ID). With -o json the PEMs are in the result and files are written only if --out is given.`
  static override examples = [
    '<%= config.bin %> certs issue dev-12345 --out ./dev-12345',
    '<%= config.bin %> certs issue dev-12345 --csr dev-12345.csr --days 90',
    '<%= config.bin %> certs issue --operator ci-bot -o json',
  ]
  static override args = {id: Args.string({description: 'device id'})}
  static override flags = {
    ...pkiFlags,
    csr: Flags.string({description: 'sign this PKCS#10 CSR (PEM or DER; - for stdin) instead of generating a key'}),
    out: Flags.string({description: 'directory for device.key, device.crt, chain.pem'}),
    days: Flags.integer({description: 'lifetime in days', default: DEFAULT_DAYS}),
    operator: Flags.string({description: 'issue a service identity with this name from the service CA'}),
  }

  async run(): Promise<void> {
    const {id} = this.args
    const {operator} = this.flags
    if ((id === undefined) === (operator === undefined)) {
      throw usageError('E_USAGE', 'name a device id or --operator NAME (exactly one)', {hint: 'iotctl certs issue dev-12345'})
    }
    const caDir = await resolveCaDir({caDir: this.flags['ca-dir'], context: this.flags.context})
    const csrBytes = this.flags.csr === undefined ? undefined : await readInputBytes(this.flags.csr)
    // PEM is text; DER travels as a binary string so no byte is re-encoded.
    const csrPem = csrBytes === undefined ? undefined : csrBytes.includes('-----BEGIN') ? csrBytes.toString('utf8') : csrBytes.toString('binary')
    const passphrase = await caPassphrase(this.flags['passphrase-file'], {caDir})
    const db = await this.ctx.database()
    const common = {caDir, passphrase, csrPem, days: this.flags.days}
    const issued: IssuedCertificate = operator === undefined
      ? (await issueDeviceCertificates(db, {...common, deviceIds: [id!]}))[0]!
      : await issueOperatorCertificate(db, {...common, name: operator})
    const out = this.flags.out ?? (this.machineOutput ? undefined : resolve(id ?? operator!))
    const files = out ? await writeIssued(out, issued, operator === undefined ? 'device' : 'operator') : []
    if (this.machineOutput) {
      await this.render({...issued, files})
    } else {
      await this.render(issued.record, {rows: (r) => [r as IssuedCertificate['record']], name: (c) => `certificate/${c.serial}`, columns: certificateColumns})
      process.stderr.write(`wrote ${files.join(', ')}\n`)
    }
  }
}
