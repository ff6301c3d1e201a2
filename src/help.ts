import {Help} from '@oclif/core/help'
import {EXIT_CODE_TABLE} from './lib/core/errors.js'

/** oclif's help plus the exit-code table on `iotctl --help` (DESIGN.md §4: one table). */
export default class IotctlHelp extends Help {
  protected override async showRootHelp(): Promise<void> {
    await super.showRootHelp()
    const rows = EXIT_CODE_TABLE.map(([code, meaning]) => `  ${String(code).padEnd(4)} ${meaning}`).join('\n')
    this.log(`EXIT CODES\n${rows}\n\nENVIRONMENT\n  IOTCTL_HOME (state directory, default ~/.iotctl), IOTCTL_CONTEXT, IOTCTL_DATABASE_URL,\n  IOTCTL_BROKER_URL, IOTCTL_OUTPUT, IOTCTL_YES, IOTCTL_DEBUG; NO_COLOR and CI=true turn off colour, spinners and prompts.\n`)
  }
}
