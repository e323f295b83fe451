import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DOCUMENT_PARAMETER_NAMES,
  DOCUMENT_PARAMETERS,
  type DocumentParameterName,
} from '../functions/shared/document-contract';
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
   * @default { production: 'master', staging: 'develop' }
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
   * Directory on the instance for the lock, gem-install marker and deploy logs.
   * @default '/var/lib/selfdeploy'
   */
  readonly stateDirectory?: string;
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

/** The script the document embeds unless told otherwise. */
export const DEFAULT_SCRIPT_PATH = join(__dirname, '..', 'scripts', 'instance', 'self-deploy.sh');

const DEFAULTS = {
  description:
    'selfdeploy: deploys the application on this instance with Capistrano over SSH to localhost, as the application user.',
  deployCommand: 'bundle exec cap "local_$SELFDEPLOY_ENVIRONMENT" deploy',
  gemInstallCommand: 'bundle install',
  branches: { production: 'master', staging: 'develop' },
  lockTimeoutSeconds: 600,
  stateDirectory: '/var/lib/selfdeploy',
} as const;

/** The script's variable for each parameter (SELFDEPLOY_ + upper snake case). */
export function scriptVariable(name: DocumentParameterName): string {
  return `SELFDEPLOY_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

/**
 * Parameters the step itself consumes (`{{ name }}` in a step input, never in shell text);
 * all others are the script's and arrive as environment variables.
 */
export const STEP_PARAMETER_NAMES: readonly DocumentParameterName[] = ['executionTimeout'];

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
    throw new Error(`the SelfDeploy document is ${size} bytes, over SSM's ${MAX_DOCUMENT_BYTES}-byte limit`);
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
export function checkScriptMatchesContract(script: string): void {
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
    throw new Error(
      `self-deploy.sh does not match functions/shared/document-contract.ts; update the script: ${problems.join('; ')}`,
    );
  }
}

/** Single-quotes `value` for POSIX sh. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** Validated build-time settings, as the script's environment variables. */
function settingsFromOptions(options: SelfDeployDocumentOptions): Record<string, string> {
  const fail = (what: string, why: string): never => {
    throw new Error(`SelfDeployDocumentOptions.${what}: ${why}`);
  };
  const deployCommand = options.deployCommand ?? DEFAULTS.deployCommand;
  const gemInstallCommand = options.gemInstallCommand ?? DEFAULTS.gemInstallCommand;
  for (const [what, command] of [
    ['deployCommand', deployCommand],
    ['gemInstallCommand', gemInstallCommand],
  ] as const) {
    if (!ONE_LINE_COMMAND.test(command) || command.includes('{{')) {
      fail(what, 'must be one line of printable ASCII (at most 1000 characters) without "{{"');
    }
  }
  const environmentPattern = new RegExp(DOCUMENT_PARAMETERS.environment.pattern);
  const branches = Object.entries(options.branches ?? DEFAULTS.branches).map(([environment, branch]) => {
    if (!environmentPattern.test(environment)) {
      fail(
        'branches',
        `environment ${JSON.stringify(environment)} does not match ${environmentPattern.source}`,
      );
    }
    if (!BRANCH.test(branch)) {
      fail('branches', `branch ${JSON.stringify(branch)} for ${environment} does not match ${BRANCH.source}`);
    }
    return `${environment}=${branch}`;
  });
  for (const what of ['pinnedRevisionParameterName', 'deployKeyParameterName'] as const) {
    const name = options[what];
    if (name !== undefined && (name === '' || name.length > 1011 || !PARAMETER_NAME_TEMPLATE.test(name))) {
      fail(what, 'must be an SSM parameter name (letters, digits, _ . - /), optionally with {environment}');
    }
  }
  const gitKnownHosts = (options.gitKnownHosts ?? '').trim();
  if (
    gitKnownHosts !== '' &&
    !gitKnownHosts.split('\n').every((line) => KNOWN_HOSTS_LINE.test(line.trim()))
  ) {
    fail('gitKnownHosts', 'must be known_hosts lines of printable ASCII');
  }
  const lockTimeout = options.lockTimeoutSeconds ?? DEFAULTS.lockTimeoutSeconds;
  if (!Number.isInteger(lockTimeout) || lockTimeout < 0 || lockTimeout > 86_400) {
    fail('lockTimeoutSeconds', 'must be a whole number of seconds from 0 to 86400');
  }
  const stateDirectory = options.stateDirectory ?? DEFAULTS.stateDirectory;
  if (!STATE_DIRECTORY.test(stateDirectory)) {
    fail('stateDirectory', `must be an absolute path matching ${STATE_DIRECTORY.source}`);
  }
  return {
    SELFDEPLOY_DEPLOY_COMMAND: deployCommand,
    SELFDEPLOY_GEM_INSTALL_COMMAND: gemInstallCommand,
    SELFDEPLOY_BRANCHES: branches.join(' '),
    SELFDEPLOY_PINNED_REVISION_PARAMETER: options.pinnedRevisionParameterName ?? '',
    SELFDEPLOY_DEPLOY_KEY_PARAMETER: options.deployKeyParameterName ?? '',
    SELFDEPLOY_GIT_KNOWN_HOSTS: gitKnownHosts,
    SELFDEPLOY_ALLOW_ROOT: options.allowRootAppUser ? '1' : '0',
    SELFDEPLOY_LOCK_TIMEOUT: String(lockTimeout),
    SELFDEPLOY_STATE_DIR: stateDirectory,
  };
}

/**
 * The step's shell (POSIX sh, as the agent runs it): map SSM_<name> to the script's
 * variables, set the build-time settings, write the embedded script to a private temporary
 * file and run it with bash. Nothing from a parameter value is ever part of this text.
 */
function runCommand(script: string, settings: Record<string, string>): string[] {
  const scriptLines = script.replace(/\n$/, '').split('\n');
  if (scriptLines.includes(HEREDOC_DELIMITER)) {
    throw new Error(`the script contains a line "${HEREDOC_DELIMITER}", which would end its here-document`);
  }
  const presenceCheck = NEVER_EMPTY.map((name) => `[ -n "\${SSM_${name}+set}" ]`).join(' && ');
  const lines = [
    '# selfdeploy: parameter values arrive only as SSM_<name> environment variables (interpolationType ENV_VAR).',
    `if ! { ${presenceCheck}; }; then`,
    "  echo 'selfdeploy: error: document parameters did not arrive as SSM_<name> environment variables; SSM Agent 3.3.2746.0 or later is required' >&2",
    `  exit ${SELF_DEPLOY_EXIT_CODES.missingPrerequisite}`,
    'fi',
    ...SCRIPT_PARAMETER_NAMES.map(
      (name) => `${scriptVariable(name)}="\${SSM_${name}-}"; export ${scriptVariable(name)}`,
    ),
    ...Object.entries(settings).map(
      ([variable, value]) => `${variable}=${shellQuote(value)}; export ${variable}`,
    ),
    `selfdeploy_dir=$(mktemp -d) || exit ${SELF_DEPLOY_EXIT_CODES.missingPrerequisite}`,
    'trap \'rm -rf "$selfdeploy_dir"\' EXIT',
    `cat > "$selfdeploy_dir/self-deploy.sh" <<'${HEREDOC_DELIMITER}'`,
    ...scriptLines,
    HEREDOC_DELIMITER,
    'selfdeploy_status=0',
    'bash "$selfdeploy_dir/self-deploy.sh" || selfdeploy_status=$?',
    'exit "$selfdeploy_status"',
  ];
  if (lines.some((line) => line.includes('{{'))) {
    throw new Error('the document text contains "{{", which SSM would treat as a parameter reference');
  }
  return lines;
}
