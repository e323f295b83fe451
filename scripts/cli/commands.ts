/**
 * The `selfdeploy` CLI's commands and options: one list from which both `--help` and the
 * parser are made, and the payload each command sends, validated with the orchestrator's
 * own schema before anything is invoked.
 */
import { parseArgs } from 'node:util';
import {
  type OperatorAction,
  type OperatorActionName,
  operatorActionSchema,
} from '../../functions/shared/operator-actions';
import { CLI_EXIT_CODES } from './exit-codes';

/** Where `--function` comes from when it is not given. */
const FUNCTION_ENV = 'SELFDEPLOY_FUNCTION';
/** Seconds between two status polls while following a deployment, unless `--interval`. */
const DEFAULT_INTERVAL_SECONDS = 2;
const INTERVAL_BOUNDS = { min: 0.5, max: 300 } as const;

/** An option: a flag (boolean) or one that takes a value (string). */
interface OptionSpec {
  readonly name: string;
  readonly type: 'string' | 'boolean';
  /** The value's placeholder in --help. */
  readonly arg?: string;
  readonly help: string;
  /** Its one-letter form (`-h`). */
  readonly short?: string;
  /** The payload field it sets, for naming the option in a validation problem. */
  readonly field?: string;
}

interface CommandSpec {
  readonly name: OperatorActionName;
  readonly summary: string;
  /** A required positional argument and the payload field it sets. */
  readonly positional?: { readonly name: string; readonly field: string; readonly help: string };
  readonly options: readonly OptionSpec[];
  /** Follows the deployment it starts (deploy, rollback). */
  readonly follows?: boolean;
}

const COMMON_OPTIONS: readonly OptionSpec[] = [
  { name: 'group', type: 'string', arg: 'NAME', help: 'the Auto Scaling group (required)', field: 'group' },
  {
    name: 'function',
    type: 'string',
    arg: 'NAME',
    help: `the orchestrator: the stack's FunctionName output (default $${FUNCTION_ENV})`,
  },
  { name: 'region', type: 'string', arg: 'REGION', help: "the function's region (default: the SDK's)" },
  {
    name: 'profile',
    type: 'string',
    arg: 'NAME',
    help: 'the shared config/credentials profile (default: the standard chain)',
  },
  { name: 'json', type: 'boolean', help: "print the orchestrator's raw answer as JSON" },
  { name: 'help', type: 'boolean', short: 'h', help: 'show this help' },
];

const REASON: OptionSpec = {
  name: 'reason',
  type: 'string',
  arg: 'TEXT',
  help: 'why, in your words (kept with the release; at most 200 characters)',
  field: 'reason',
};
const FOLLOW_OPTIONS: readonly OptionSpec[] = [
  {
    name: 'no-wait',
    type: 'boolean',
    help: 'print the deployment id and return instead of following it',
  },
  {
    name: 'interval',
    type: 'string',
    arg: 'S',
    help: `seconds between status polls while following (${INTERVAL_BOUNDS.min}-${INTERVAL_BOUNDS.max}, default ${DEFAULT_INTERVAL_SECONDS})`,
  },
];

export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'status',
    summary: "release, pause, deployment in flight, and each instance's state, SHA, last deploy, drift",
    options: [],
  },
  {
    name: 'release',
    summary: "the group's release: the SHA its launches deploy, and the previous one",
    options: [],
  },
  {
    name: 'deploy',
    summary: 'deploy a revision canary-first, promote it on full success; follows it to a result table',
    positional: { name: 'revision', field: 'revision', help: 'a commit SHA, tag or branch' },
    options: [REASON, ...FOLLOW_OPTIONS],
    follows: true,
  },
  {
    name: 'rollback',
    summary: "deploy the release's previous SHA the same way and promote it (migrations stay)",
    options: [REASON, ...FOLLOW_OPTIONS],
    follows: true,
  },
  {
    name: 'pause',
    summary: "let launches into service without a deploy (they run the image's code) until resumed",
    options: [REASON],
  },
  { name: 'resume', summary: 'deploy on launch again', options: [] },
  {
    name: 'logs',
    summary: "the output tail of the newest self-deploy runs on the group's instances",
    options: [
      {
        name: 'instance',
        type: 'string',
        arg: 'ID',
        help: 'only this instance (i-…)',
        field: 'instanceId',
      },
      {
        name: 'deployment',
        type: 'string',
        arg: 'ID',
        help: 'only the runs of this deployment (d-…)',
        field: 'deploymentId',
      },
    ],
  },
];

/** A problem the user can fix; printed as one line, exit 2. */
export class UsageError extends Error {
  public override name = 'UsageError';
}

/** What the user asked for, ready to invoke. */
export interface Request {
  /** The payload, valid by the orchestrator's schema. */
  readonly action: OperatorAction;
  readonly functionName: string;
  readonly region?: string;
  readonly profile?: string;
  readonly json: boolean;
  /** Set when a started deployment is followed: milliseconds between status polls. */
  readonly followIntervalMs?: number;
}

type Parsed =
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'run'; readonly request: Request };

const allOptions = [...COMMON_OPTIONS, ...COMMANDS.flatMap((command) => command.options)];

/**
 * Reads `argv` (after the program name) and the environment. Returns help text for `--help`
 * (or no arguments), else a validated request; throws one UsageError naming every problem.
 */
export function parseCommandLine(argv: readonly string[], env: NodeJS.ProcessEnv): Parsed {
  const { tokens } = parseArgs({
    args: [...argv],
    options: Object.fromEntries(
      allOptions.map((o) => [o.name, { type: o.type, ...(o.short && { short: o.short }) }]),
    ),
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const positionals = tokens.flatMap((token) => (token.kind === 'positional' ? [token.value] : []));
  const [commandName, ...operands] = positionals;
  const wantsHelp = tokens.some((token) => token.kind === 'option' && token.name === 'help');
  if (commandName === undefined) {
    if (wantsHelp || argv.length === 0) return { kind: 'help', text: topHelp() };
    throw new UsageError(`no command: expected one of ${COMMANDS.map((c) => c.name).join(', ')} (--help)`);
  }
  const command = COMMANDS.find((c) => c.name === commandName);
  if (command === undefined) {
    const unknown = `unknown command ${JSON.stringify(commandName)}: expected one of ${COMMANDS.map((c) => c.name).join(', ')}`;
    throw new UsageError(`${unknown} (selfdeploy --help)`);
  }
  if (wantsHelp) return { kind: 'help', text: commandHelp(command) };

  const problems: string[] = [];
  const allowed = [...COMMON_OPTIONS, ...command.options];
  const values = new Map<string, string | true>();
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    const spec = allowed.find((o) => o.name === token.name);
    if (spec === undefined) {
      const elsewhere = allOptions.some((o) => o.name === token.name);
      problems.push(
        `${elsewhere ? `${token.rawName} is not an option of ${command.name}` : `unknown option ${token.rawName}`}`,
      );
      continue;
    }
    if (values.has(spec.name)) problems.push(`${token.rawName} is given more than once`);
    if (spec.type === 'boolean') {
      if (token.value !== undefined) problems.push(`${token.rawName} takes no value`);
      values.set(spec.name, true);
    } else if (token.value === undefined || (!token.inlineValue && token.value.startsWith('-'))) {
      problems.push(`${token.rawName} needs a value (${spec.arg})`);
    } else {
      values.set(spec.name, token.value);
    }
  }
  const text = (name: string) => {
    const value = values.get(name);
    return typeof value === 'string' ? value : undefined;
  };

  const expected = command.positional ? 1 : 0;
  for (const extra of operands.slice(expected)) problems.push(`unexpected argument ${JSON.stringify(extra)}`);
  const operand = command.positional ? operands[0] : undefined;
  if (command.positional && operand === undefined)
    problems.push(`${command.name} needs <${command.positional.name}>`);
  const group = text('group');
  if (group === undefined && !problems.some((p) => p.startsWith('--group ')))
    problems.push('--group is required');
  const functionName = text('function') ?? nonEmpty(env[FUNCTION_ENV]);
  if (functionName === undefined && !problems.some((p) => p.startsWith('--function '))) {
    problems.push(`--function or $${FUNCTION_ENV} is required: the stack's FunctionName output`);
  }
  const interval = text('interval');
  const intervalSeconds = interval === undefined ? DEFAULT_INTERVAL_SECONDS : Number(interval);
  if (
    interval !== undefined &&
    (interval.trim() === '' ||
      !Number.isFinite(intervalSeconds) ||
      intervalSeconds < INTERVAL_BOUNDS.min ||
      intervalSeconds > INTERVAL_BOUNDS.max)
  ) {
    problems.push(
      `--interval must be a number of seconds from ${INTERVAL_BOUNDS.min} to ${INTERVAL_BOUNDS.max}, got ${interval}`,
    );
  }

  // The payload the orchestrator will validate, checked here with the same schema.
  const payload: Record<string, string> = { action: command.name };
  if (group !== undefined) payload.group = group;
  if (command.positional && operand !== undefined) payload[command.positional.field] = operand;
  for (const o of command.options) {
    const value = o.field === undefined ? undefined : text(o.name);
    if (o.field !== undefined && value !== undefined) payload[o.field] = value;
  }
  const checked = operatorActionSchema.safeParse(payload);
  if (!checked.success) {
    for (const issue of checked.error.issues) {
      const field = String(issue.path[0] ?? '');
      if (payload[field] === undefined) continue; // already reported as missing
      problems.push(`${optionFor(command, field)} ${JSON.stringify(payload[field])}: ${issue.message}`);
    }
  }
  if (problems.length > 0 || !checked.success || functionName === undefined) {
    throw new UsageError(`${problems.join('; ')} (selfdeploy ${command.name} --help)`);
  }
  const region = text('region');
  const profile = text('profile');
  return {
    kind: 'run',
    request: {
      action: checked.data,
      functionName,
      ...(region === undefined ? {} : { region }),
      ...(profile === undefined ? {} : { profile }),
      json: values.get('json') === true,
      ...(command.follows && values.get('no-wait') !== true
        ? { followIntervalMs: Math.round(intervalSeconds * 1000) }
        : {}),
    },
  };
}

const nonEmpty = (value: string | undefined) => (value === undefined || value === '' ? undefined : value);

/** How the user gave a payload field: `--group`, `<revision>`. */
function optionFor(command: CommandSpec, field: string): string {
  if (command.positional?.field === field) return `<${command.positional.name}>`;
  const option = [...COMMON_OPTIONS, ...command.options].find((o) => o.field === field);
  return option ? `--${option.name}` : field;
}

function helpLine(usage: string, text: string): string {
  return `  ${usage.padEnd(16)}  ${text}`;
}

function optionLines(options: readonly OptionSpec[]): string[] {
  return options.map((o) => helpLine(`--${o.name}${o.arg ? ` ${o.arg}` : ''}`, o.help));
}

function commonTail(): string[] {
  return [
    'Common options:',
    ...optionLines(COMMON_OPTIONS),
    '',
    "Credentials and region come from the AWS SDK's standard chain (environment, profile, SSO,",
    'instance role). AWS_ENDPOINT_URL_LAMBDA points it at another endpoint, such as the local',
    'control plane of `npm start -- --keep`.',
    '',
    'Exit codes:',
    ...Object.values(CLI_EXIT_CODES).map(({ code, meaning }) => `  ${code}  ${meaning}`),
    '',
  ];
}

function usage(command: CommandSpec): string {
  const positional = command.positional ? ` <${command.positional.name}>` : '';
  return `Usage: npx selfdeploy ${command.name}${positional} --group NAME [options]`;
}

/** The top-level --help. */
export function topHelp(): string {
  return [
    'Usage: npx selfdeploy <command> --group NAME [options]',
    '',
    'Operates a group managed by selfdeploy through its orchestrator function (Lambda Invoke), so',
    'every decision is the one the orchestrator makes for console actions. `selfdeploy <command>',
    "--help` shows a command's own options.",
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(9)} ${c.summary}`),
    '',
    ...commonTail(),
  ].join('\n');
}

/** One command's --help. */
function commandHelp(command: CommandSpec): string {
  return [
    usage(command),
    '',
    `${command.summary[0]?.toUpperCase()}${command.summary.slice(1)}.`,
    ...(command.positional
      ? ['', 'Arguments:', helpLine(`<${command.positional.name}>`, command.positional.help)]
      : []),
    ...(command.options.length > 0 ? ['', 'Options:', ...optionLines(command.options)] : []),
    '',
    ...commonTail(),
  ].join('\n');
}
