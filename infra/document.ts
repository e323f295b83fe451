import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DOCUMENT_PARAMETER_NAMES,
  DOCUMENT_PARAMETERS,
  type DocumentParameterName,
} from '../functions/shared/document-contract';
import { SelfDeployError } from '../functions/shared/errors';
import { SELF_DEPLOY_EXIT_CODES } from '../functions/shared/exit-codes';

/** Build-time choices baked into the SelfDeploy document (not per-command parameters). */
export interface SelfDeployDocumentOptions {
  /**
   * The instance script to embed; the document carries its full text.
   * @default scripts/instance/self-deploy.sh of this repository
   */
  readonly scriptPath?: string;
  /**
   * Document description shown in the SSM console.
   * @default a one-line summary of what the document does
   */
  readonly description?: string;
  /**
   * Deploy command, run by `sh -c` as the application user in the deploy checkout, with
   * SELFDEPLOY_REVISION / REVISION set to the target commit and SELFDEPLOY_ENVIRONMENT to
   * the environment. One line of printable ASCII.
   * @default 'bundle exec cap "local_$SELFDEPLOY_ENVIRONMENT" deploy'
   */
  readonly deployCommand?: string;
  /**
   * Gem install command, run as the application user in the deploy checkout only when
   * Gemfile.lock changed since the last successful run. One line of printable ASCII.
   * @default 'bundle install'
   */
  readonly gemInstallCommand?: string;
  /**
   * Branch deployed per environment when no revision is given and none is pinned.
   * Environments not listed deploy the remote's default branch (origin/HEAD).
   * @default {} (every environment deploys the remote's default branch)
   */
  readonly branches?: Readonly<Record<string, string>>;
  /**
   * SSM parameter (String) holding a pinned revision; `{environment}` is replaced by the
   * command's environment. A missing parameter means "not pinned".
   * @default no pinned-revision lookup
   */
  readonly pinnedRevisionParameterName?: string;
  /**
   * SSM SecureString parameter holding the private SSH key for a private git repository;
   * `{environment}` is replaced by the command's environment.
   * @default no deploy key (public repository, or access the image already has)
   */
  readonly deployKeyParameterName?: string;
  /**
   * known_hosts lines pinning the git host's keys, used (alone) whenever git talks SSH.
   * @default the instance's own known_hosts files (/etc/ssh/ssh_known_hosts, ~/.ssh/known_hosts)
   */
  readonly gitKnownHosts?: string;
  /**
   * Allow `appUser` to be root. Deploying as root gives the application root's powers.
   * @default false
   */
  readonly allowRootAppUser?: boolean;
  /**
   * Seconds a run waits for a concurrent run on the same instance before giving up.
   * @default 600
   */
  readonly lockTimeoutSeconds?: number;
  /**
   * Directory on the instance for the lock, gem-install marker and deploy logs. Any
   * `{instanceId}` in it stands for the instance's id (the agent's AWS_SSM_INSTANCE_ID), for
   * instances that share one filesystem, as the local run's do.
   * @default '/var/lib/selfdeploy'
   */
  readonly stateDirectory?: string;
  /**
   * Seconds a run waits for the instance to finish booting (user data may still install
   * git or Ruby when the SSM agent comes online) before it checks prerequisites; 0 = no
   * wait. The wait counts inside the command's executionTimeout. From 0 to 7200.
   * @default 600
   */
  readonly bootWaitSeconds?: number;
  /**
   * Command run by `sh -c` as root that exits 0 once boot has finished, bounded by
   * bootWaitSeconds. One line of printable ASCII.
   * @default none: `cloud-init status --wait` where cloud-init exists, else `systemctl is-system-running --wait`
   */
  readonly bootCheckCommand?: string;
  /**
   * Attempts of the health check (a group's healthCheckUrl) before the deploy counts as
   * failed. From 1 to 100.
   * @default 10
   */
  readonly healthCheckAttempts?: number;
  /**
   * Seconds between two health-check attempts. From 1 to 60.
   * @default 3
   */
  readonly healthCheckIntervalSeconds?: number;
  /**
   * Allow an `appUser` with sudo rights. Such a user runs the repository's Gemfile and
   * Capfile with root's powers in effect.
   * @default false
   */
  readonly allowSudoAppUser?: boolean;
}

/** The SelfDeploy document cannot be built: from these options, or from this script. */
export class SelfDeployDocumentError extends SelfDeployError {}

/** Build-time options the SelfDeploy document cannot be built with; the message names every problem. */
export class SelfDeployDocumentOptionsError extends SelfDeployDocumentError {
  public constructor(
    /** Each problem, as `SelfDeployDocumentOptions.<option>: <why>`. */
    public readonly problems: readonly string[],
  ) {
    super(problems.join('; '));
  }
}

/**
 * One document parameter. Script parameters reach the script only as SSM_<name> environment
 * variables (`interpolationType: 'ENV_VAR'`); step parameters fill a step input instead.
 */
export interface SelfDeployDocumentParameter {
  readonly type: 'String';
  readonly description: string;
  readonly default: string;
  readonly allowedPattern: string;
  readonly interpolationType?: 'ENV_VAR';
}

/** The single aws:runShellScript step. */
export interface SelfDeployDocumentStep {
  readonly action: 'aws:runShellScript';
  readonly name: string;
  readonly precondition: { readonly StringEquals: readonly ['platformType', 'Linux'] };
  readonly inputs: { readonly runCommand: readonly string[]; readonly timeoutSeconds: string };
}

/** A schema-2.2 Command document (the `Content` of AWS::SSM::Document). */
export interface SelfDeployDocument {
  readonly schemaVersion: '2.2';
  readonly description: string;
  readonly parameters: Readonly<Record<DocumentParameterName, SelfDeployDocumentParameter>>;
  readonly mainSteps: readonly [SelfDeployDocumentStep];
}

export { SELF_DEPLOY_EXIT_CODES } from '../functions/shared/exit-codes';

/** In `stateDirectory`, stands for the instance's id (AWS_SSM_INSTANCE_ID at run time). */
export const INSTANCE_ID_PLACEHOLDER = '{instanceId}';

/** The script the document embeds unless told otherwise. */
export const DEFAULT_SCRIPT_PATH = join(__dirname, '..', 'scripts', 'instance', 'self-deploy.sh');

const DEFAULTS = {
  description:
    'selfdeploy: deploys the application on this instance with Capistrano over SSH to localhost, as the application user.',
  deployCommand: 'bundle exec cap "local_$SELFDEPLOY_ENVIRONMENT" deploy',
  gemInstallCommand: 'bundle install',
  branches: {} as Readonly<Record<string, string>>,
  lockTimeoutSeconds: 600,
  stateDirectory: '/var/lib/selfdeploy',
  bootWaitSeconds: 600,
  healthCheckAttempts: 10,
  healthCheckIntervalSeconds: 3,
} as const;

/** The script's variable for each parameter (SELFDEPLOY_ + upper snake case). */
function scriptVariable(name: DocumentParameterName): string {
  return `SELFDEPLOY_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

/**
 * Parameters the step itself consumes (`{{ name }}` in a step input, never in shell text);
 * all others are the script's and arrive as environment variables.
 */
const STEP_PARAMETER_NAMES: readonly DocumentParameterName[] = ['executionTimeout'];

/** Parameters the script receives, as SSM_<name> environment variables. */
export const SCRIPT_PARAMETER_NAMES: readonly DocumentParameterName[] = DOCUMENT_PARAMETER_NAMES.filter(
  (name) => !STEP_PARAMETER_NAMES.includes(name),
);

// Parameters that can never be empty: an agent that sets none of them predates ENV_VAR.
const NEVER_EMPTY = SCRIPT_PARAMETER_NAMES.filter(
  (name) => !new RegExp(DOCUMENT_PARAMETERS[name].pattern).test(''),
);

const HEREDOC_DELIMITER = 'SELFDEPLOY_SCRIPT_END';
// SSM's documented maximum document size.
const MAX_DOCUMENT_BYTES = 64 * 1024;
const ONE_LINE_COMMAND = /^[\x20-\x7e]{1,1000}$/;
const BRANCH = /^[A-Za-z0-9_][A-Za-z0-9._/-]{0,127}$/;
const PARAMETER_NAME_TEMPLATE = /^[A-Za-z0-9_.\-/]*(\{environment\}[A-Za-z0-9_.\-/]*)*$/;
const STATE_DIRECTORY = new RegExp(DOCUMENT_PARAMETERS.appPath.pattern);
const KNOWN_HOSTS_LINE = /^[\x20-\x7e]+$/;

/** Builds the SelfDeploy Command document from the instance script and the parameter contract. */
export function buildSelfDeployDocument(options: SelfDeployDocumentOptions = {}): SelfDeployDocument {
  const script = readFileSync(options.scriptPath ?? DEFAULT_SCRIPT_PATH, 'utf8');
  checkScriptMatchesContract(script);

  const settings = settingsFromOptions(options);
  const parameters = Object.fromEntries(
    DOCUMENT_PARAMETER_NAMES.map((name) => [
      name,
      {
        type: 'String',
        description: DOCUMENT_PARAMETERS[name].description,
        default: DOCUMENT_PARAMETERS[name].default,
        allowedPattern: DOCUMENT_PARAMETERS[name].pattern,
        // A step parameter is substituted as text into a step input; its pattern allows digits only.
        ...(STEP_PARAMETER_NAMES.includes(name) ? {} : { interpolationType: 'ENV_VAR' as const }),
      } satisfies SelfDeployDocumentParameter,
    ]),
  ) as Record<DocumentParameterName, SelfDeployDocumentParameter>;

  const document: SelfDeployDocument = {
    schemaVersion: '2.2',
    description: options.description ?? DEFAULTS.description,
    parameters,
    mainSteps: [
      {
        action: 'aws:runShellScript',
        name: 'selfDeploy',
        precondition: { StringEquals: ['platformType', 'Linux'] },
        inputs: {
          runCommand: runCommand(script, settings),
          timeoutSeconds: '{{ executionTimeout }}',
        },
      },
    ],
  };
  const size = Buffer.byteLength(JSON.stringify(document));
  if (size > MAX_DOCUMENT_BYTES) {
    throw new SelfDeployDocumentError(
      `the SelfDeploy document is ${size} bytes, over SSM's ${MAX_DOCUMENT_BYTES}-byte limit`,
    );
  }
  return document;
}

/** The whole shell text the agent writes to its script file (runCommand joined by newlines). */
export function documentShell(document: SelfDeployDocument): string {
  return document.mainSteps[0].inputs.runCommand.join('\n');
}

/**
 * Throws unless the script validates every parameter with exactly the contract's pattern and
 * default, so the script and the document cannot drift apart.
 */
function checkScriptMatchesContract(script: string): void {
  const problems: string[] = [];
  for (const name of SCRIPT_PARAMETER_NAMES) {
    const variable = scriptVariable(name);
    const expected = {
      PATTERN: DOCUMENT_PARAMETERS[name].pattern,
      DEFAULT: DOCUMENT_PARAMETERS[name].default,
    };
    for (const [kind, value] of Object.entries(expected)) {
      const line = `readonly ${kind}_${variable}=${shellQuote(value)}`;
      if (!script.split('\n').includes(line)) {
        problems.push(`missing line: ${line}`);
      }
    }
  }
  if (problems.length > 0) {
    throw new SelfDeployDocumentError(
      `self-deploy.sh does not match functions/shared/document-contract.ts; update the script: ${problems.join('; ')}`,
    );
  }
}

/** Single-quotes `value` for POSIX sh. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** Validated build-time settings, as the script's environment variables; throws naming every problem. */
function settingsFromOptions(options: SelfDeployDocumentOptions): Record<string, string> {
  const { settings, problems } = checkedSettings(options);
  if (problems.length > 0) {
    throw new SelfDeployDocumentOptionsError(problems);
  }
  return settings;
}

function checkedSettings(options: SelfDeployDocumentOptions): {
  settings: Record<string, string>;
  problems: string[];
} {
  const problems: string[] = [];
  const problem = (what: keyof SelfDeployDocumentOptions, why: string): void => {
    problems.push(`SelfDeployDocumentOptions.${what}: ${why}`);
  };
  const wholeNumber = (
    what: keyof SelfDeployDocumentOptions,
    value: number,
    min: number,
    max: number,
  ): void => {
    if (!Number.isInteger(value) || value < min || value > max) {
      problem(what, `must be a whole number from ${min} to ${max}, not ${value}`);
    }
  };

  const deployCommand = options.deployCommand ?? DEFAULTS.deployCommand;
  const gemInstallCommand = options.gemInstallCommand ?? DEFAULTS.gemInstallCommand;
  const bootCheckCommand = options.bootCheckCommand;
  for (const [what, command] of [
    ['deployCommand', deployCommand],
    ['gemInstallCommand', gemInstallCommand],
    ['bootCheckCommand', bootCheckCommand],
  ] as const) {
    if (command !== undefined && (!ONE_LINE_COMMAND.test(command) || command.includes('{{'))) {
      problem(what, 'must be one line of printable ASCII (at most 1000 characters) without "{{"');
    }
  }
  const environmentPattern = new RegExp(DOCUMENT_PARAMETERS.environment.pattern);
  const branches = Object.entries(options.branches ?? DEFAULTS.branches).map(([environment, branch]) => {
    if (!environmentPattern.test(environment)) {
      problem(
        'branches',
        `environment ${JSON.stringify(environment)} does not match ${environmentPattern.source}`,
      );
    }
    if (!BRANCH.test(branch)) {
      problem(
        'branches',
        `branch ${JSON.stringify(branch)} for ${environment} does not match ${BRANCH.source}`,
      );
    }
    return `${environment}=${branch}`;
  });
  for (const what of ['pinnedRevisionParameterName', 'deployKeyParameterName'] as const) {
    const name = options[what];
    if (name !== undefined && (name === '' || name.length > 1011 || !PARAMETER_NAME_TEMPLATE.test(name))) {
      problem(
        what,
        'must be an SSM parameter name (letters, digits, _ . - /), optionally with {environment}',
      );
    }
  }
  const gitKnownHosts = (options.gitKnownHosts ?? '').trim();
  if (
    gitKnownHosts !== '' &&
    !gitKnownHosts.split('\n').every((line) => KNOWN_HOSTS_LINE.test(line.trim()))
  ) {
    problem('gitKnownHosts', 'must be known_hosts lines of printable ASCII');
  }
  const lockTimeout = options.lockTimeoutSeconds ?? DEFAULTS.lockTimeoutSeconds;
  wholeNumber('lockTimeoutSeconds', lockTimeout, 0, 86_400);
  const stateDirectory = options.stateDirectory ?? DEFAULTS.stateDirectory;
  if (!STATE_DIRECTORY.test(stateDirectory.replaceAll(INSTANCE_ID_PLACEHOLDER, 'i-0123456789abcdef0'))) {
    problem('stateDirectory', `must be an absolute path matching ${STATE_DIRECTORY.source}`);
  }
  const bootWait = options.bootWaitSeconds ?? DEFAULTS.bootWaitSeconds;
  wholeNumber('bootWaitSeconds', bootWait, 0, 7200);
  const healthCheckAttempts = options.healthCheckAttempts ?? DEFAULTS.healthCheckAttempts;
  wholeNumber('healthCheckAttempts', healthCheckAttempts, 1, 100);
  const healthCheckInterval = options.healthCheckIntervalSeconds ?? DEFAULTS.healthCheckIntervalSeconds;
  wholeNumber('healthCheckIntervalSeconds', healthCheckInterval, 1, 60);

  return {
    problems,
    settings: {
      SELFDEPLOY_DEPLOY_COMMAND: deployCommand,
      SELFDEPLOY_GEM_INSTALL_COMMAND: gemInstallCommand,
      SELFDEPLOY_BRANCHES: branches.join(' '),
      SELFDEPLOY_PINNED_REVISION_PARAMETER: options.pinnedRevisionParameterName ?? '',
      SELFDEPLOY_DEPLOY_KEY_PARAMETER: options.deployKeyParameterName ?? '',
      SELFDEPLOY_GIT_KNOWN_HOSTS: gitKnownHosts,
      SELFDEPLOY_ALLOW_ROOT: options.allowRootAppUser ? '1' : '0',
      SELFDEPLOY_ALLOW_SUDO: options.allowSudoAppUser ? '1' : '0',
      SELFDEPLOY_LOCK_TIMEOUT: String(lockTimeout),
      SELFDEPLOY_STATE_DIR: stateDirectory,
      // Empty: the script's own check (cloud-init, else systemd).
      SELFDEPLOY_BOOT_CHECK_COMMAND: bootCheckCommand ?? '',
      SELFDEPLOY_BOOT_WAIT_SECONDS: String(bootWait),
      SELFDEPLOY_HEALTH_CHECK_ATTEMPTS: String(healthCheckAttempts),
      SELFDEPLOY_HEALTH_CHECK_INTERVAL: String(healthCheckInterval),
    },
  };
}

/**
 * The step's shell (POSIX sh, as the agent runs it): map SSM_<name> to the script's
 * variables, set the build-time settings, write the embedded script to a private temporary
 * file and run it with bash. Nothing from a parameter value is ever part of this text.
 *
 * Success needs proof, not just exit status 0: a script cut short (a full /tmp, a partial
 * write) can define its functions and exit 0 without deploying. So a failed write fails the
 * run, and a run whose script exits 0 without leaving a success result in
 * SELFDEPLOY_RESULT_FILE (the script writes it as its very last act) fails too, both with
 * exit code noResult. The output is no proof: SSM keeps only its first 24,000 characters.
 * Everything is one brace group, which the shell parses whole before running any of it: if
 * the agent's own copy of this text is cut short, nothing runs and the shell exits non-zero.
 */
function runCommand(script: string, settings: Record<string, string>): string[] {
  const scriptLines = script.replace(/\n$/, '').split('\n');
  if (scriptLines.includes(HEREDOC_DELIMITER)) {
    throw new SelfDeployDocumentError(
      `the script contains a line "${HEREDOC_DELIMITER}", which would end its here-document`,
    );
  }
  const noResult = SELF_DEPLOY_EXIT_CODES.noResult;
  const presenceCheck = NEVER_EMPTY.map((name) => `[ -n "\${SSM_${name}+set}" ]`).join(' && ');
  const lines = [
    '# selfdeploy: parameter values arrive only as SSM_<name> environment variables (interpolationType ENV_VAR).',
    '{',
    `if ! { ${presenceCheck}; }; then`,
    "  echo 'selfdeploy: error: document parameters did not arrive as SSM_<name> environment variables; SSM Agent 3.3.2746.0 or later is required' >&2",
    `  exit ${SELF_DEPLOY_EXIT_CODES.missingPrerequisite}`,
    'fi',
    ...SCRIPT_PARAMETER_NAMES.map(
      (name) => `${scriptVariable(name)}="\${SSM_${name}-}"; export ${scriptVariable(name)}`,
    ),
    ...Object.entries(settings).map(([variable, value]) => {
      // Only the state directory may name the instance: the id expands at run time, outside the quotes.
      const word =
        variable === 'SELFDEPLOY_STATE_DIR'
          ? value.split(INSTANCE_ID_PLACEHOLDER).map(shellQuote).join('"$AWS_SSM_INSTANCE_ID"')
          : shellQuote(value);
      return `${variable}=${word}; export ${variable}`;
    }),
    'if ! selfdeploy_dir=$(mktemp -d); then',
    "  echo 'selfdeploy: error: cannot create a temporary directory for the script (mktemp -d failed); nothing was run' >&2",
    `  exit ${noResult}`,
    'fi',
    'trap \'rm -rf "$selfdeploy_dir"\' EXIT',
    `if ! cat >"$selfdeploy_dir/self-deploy.sh" <<'${HEREDOC_DELIMITER}'`,
    ...scriptLines,
    HEREDOC_DELIMITER,
    'then',
    '  echo "selfdeploy: error: writing the script to $selfdeploy_dir failed (is the disk full?); nothing was run" >&2',
    `  exit ${noResult}`,
    'fi',
    'SELFDEPLOY_RESULT_FILE="$selfdeploy_dir/result"; export SELFDEPLOY_RESULT_FILE',
    'selfdeploy_status=0',
    'bash "$selfdeploy_dir/self-deploy.sh" || selfdeploy_status=$?',
    'if [ "$selfdeploy_status" -eq 0 ]; then',
    "  selfdeploy_result=''",
    '  [ ! -f "$SELFDEPLOY_RESULT_FILE" ] || IFS= read -r selfdeploy_result <"$SELFDEPLOY_RESULT_FILE" || :',
    '  case $selfdeploy_result in',
    `  '{"status":"success",'*) ;;`,
    '  *)',
    "    echo 'selfdeploy: error: the script exited 0 but produced no result (it writes one as its last act); counted as a failure' >&2",
    `    exit ${noResult}`,
    '    ;;',
    '  esac',
    'fi',
    'exit "$selfdeploy_status"',
    '}',
  ];
  if (lines.some((line) => line.includes('{{'))) {
    throw new SelfDeployDocumentError(
      'the document text contains "{{", which SSM would treat as a parameter reference',
    );
  }
  return lines;
}
