/**
 * The `selfdeploy` CLI's exit codes, defined once: its --help and docs/cli.md are checked
 * against this list.
 */
export const CLI_EXIT_CODES = {
  success: { code: 0, meaning: 'done; a followed deploy or rollback was promoted' },
  failure: {
    code: 1,
    meaning: 'the orchestrator refused or failed the action, or a followed deployment failed',
  },
  usage: { code: 2, meaning: 'bad command or options; nothing was invoked' },
  unreachable: {
    code: 3,
    meaning: 'could not invoke the orchestrator (credentials, region, name, network); a deployment goes on',
  },
} as const;

export type CliExitCode = (typeof CLI_EXIT_CODES)[keyof typeof CLI_EXIT_CODES]['code'];
