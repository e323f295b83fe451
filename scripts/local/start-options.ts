/**
 * `npm start`'s options: one list from which both `--help` and the parser are made, so
 * the help states exactly the bounds the parser enforces.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_BOOT_DELAY_SECONDS } from './local-run';

/** Above this many instances, progress is one counter line instead of a line per instance. */
export const COMPACT_ABOVE_INSTANCES = 20;

/** A numeric option: its bounds, whether it must be whole, its default (undefined: none). */
export interface NumberOption {
  readonly name: string;
  readonly arg: string;
  readonly min: number;
  readonly max: number;
  readonly integer: boolean;
  readonly fallback: number | undefined;
  readonly help: string;
}

/** A flag: present or not. */
export interface FlagOption {
  readonly name: string;
  readonly help: string;
}

export const NUMBER_OPTIONS: readonly NumberOption[] = [
  {
    name: 'instances',
    arg: 'N',
    min: 1,
    max: 1000,
    integer: true,
    fallback: 3,
    help: `instances to launch; above ${COMPACT_ABOVE_INSTANCES}, progress is one live counter line instead of a line per instance`,
  },
  {
    name: 'agent-delay',
    arg: 'S',
    min: 0,
    max: 3600,
    integer: false,
    fallback: 5,
    help: "simulated seconds until a new instance's SSM agent registers",
  },
  {
    name: 'agent-rate',
    arg: 'R',
    min: 0.001,
    max: 10_000,
    integer: false,
    fallback: undefined,
    help: 'agent registrations accepted per simulated second, as on big scale-outs (default unlimited)',
  },
  {
    name: 'boot-delay',
    arg: 'S',
    min: 0,
    max: 3600,
    integer: false,
    fallback: DEFAULT_BOOT_DELAY_SECONDS,
    help: "simulated seconds from a new instance's agent registration until its boot (user data, which clones the application) finishes",
  },
  {
    name: 'fail',
    arg: 'N',
    min: 0,
    max: 1000,
    integer: true,
    fallback: 0,
    help: 'the first N instances launched cannot deploy (their sshd is down): selfdeploy abandons them and Auto Scaling replaces them',
  },
  {
    name: 'throttle',
    arg: 'F',
    min: 0,
    max: 0.9,
    integer: false,
    fallback: 0,
    help: 'fraction of API calls answered with a throttling error; the SDK backs off (adaptive retries), so such a run can take minutes: give it a longer --timeout',
  },
  {
    name: 'lose-events',
    arg: 'F',
    min: 0,
    max: 1,
    integer: false,
    fallback: 0,
    help: 'fraction of launch and command-status events lost; the reconcile schedule recovers them',
  },
  {
    name: 'duplicate-events',
    arg: 'N',
    min: 0,
    max: 10,
    integer: true,
    fallback: 0,
    help: 'extra deliveries of every event',
  },
  {
    name: 'stand-in',
    arg: 'MS',
    min: 0,
    max: 600_000,
    integer: false,
    fallback: undefined,
    help: 'replace the real deploy with a stand-in that takes MS milliseconds (default: the real deploy)',
  },
  {
    name: 'time-scale',
    arg: 'X',
    min: 0.1,
    max: 1000,
    integer: false,
    fallback: 10,
    help: 'simulated seconds per real second for AWS timers',
  },
  {
    name: 'port',
    arg: 'P',
    min: 0,
    max: 65535,
    integer: true,
    fallback: undefined,
    help: 'control plane port on 127.0.0.1 (default: any free port)',
  },
  {
    name: 'timeout',
    arg: 'S',
    min: 5,
    max: 86_400,
    integer: false,
    fallback: 110,
    help: 'give up after S real seconds',
  },
];

export const FLAG_OPTIONS: readonly FlagOption[] = [
  {
    name: 'keep',
    help: 'leave the control plane running afterwards (Ctrl-C stops it) and print the credentials and settings that point the AWS CLI or an SDK at it',
  },
  { name: 'help', help: 'show this help' },
];

/** `--help`'s text, made from the option lists. */
export const HELP = [
  'Usage: npm start -- [options]',
  '',
  'Shows the release flow on a local Auto Scaling group: a scale-out records the release, a new',
  'commit is deployed canary-first and promoted, a bad commit fails on the canary and leaves the',
  'release, one more instance deploys the release, a rollback. After each step it prints every',
  'instance. Bad options exit 2.',
  '',
  'Options:',
  ...NUMBER_OPTIONS.map((o) => {
    const range = `${o.integer ? 'whole number ' : ''}${o.min}-${o.max}`;
    const fallback = o.fallback === undefined ? '' : `, default ${o.fallback}`;
    return helpLine(`--${o.name} ${o.arg}`, `${o.help} (${range}${fallback})`);
  }),
  ...FLAG_OPTIONS.map((o) => helpLine(`--${o.name}`, o.help)),
  '',
].join('\n');

function helpLine(usage: string, text: string): string {
  return `  ${usage.padEnd(20)}  ${text}`;
}

/** What the user asked for. */
export interface Options {
  readonly instances: number;
  readonly agentDelay: number;
  readonly agentRate?: number;
  readonly bootDelay: number;
  readonly fail: number;
  readonly throttle: number;
  readonly loseEvents: number;
  readonly duplicateEvents: number;
  readonly standIn?: number;
  readonly timeScale: number;
  readonly port?: number;
  readonly timeout: number;
  readonly keep: boolean;
}

/** A problem the user can fix; printed as one line without a stack trace. */
export class UsageError extends Error {}

/** The options in `argv`, undefined for --help; throws one UsageError naming every problem. */
export function parseOptions(argv: readonly string[]): Options | undefined {
  let values: Record<string, string | boolean | undefined>;
  try {
    const parsed = parseArgs({
      args: joinNegativeValues(argv),
      options: Object.fromEntries([
        ...NUMBER_OPTIONS.map((o) => [o.name, { type: 'string' as const }]),
        ...FLAG_OPTIONS.map((o) => [o.name, { type: 'boolean' as const }]),
      ]),
      strict: true,
    });
    values = parsed.values as Record<string, string | boolean | undefined>;
  } catch (error) {
    throw new UsageError(
      `${(error as Error).message.split('\n')[0]} (npm start -- --help lists the options)`,
    );
  }
  if (values.help) return undefined;
  const problems: string[] = [];
  const number: Record<string, number | undefined> = {};
  for (const o of NUMBER_OPTIONS) {
    const raw = values[o.name];
    if (raw === undefined) {
      number[o.name] = o.fallback;
      continue;
    }
    const parsed = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : Number.NaN;
    if (
      !Number.isFinite(parsed) ||
      parsed < o.min ||
      parsed > o.max ||
      (o.integer && !Number.isInteger(parsed))
    ) {
      problems.push(
        `--${o.name} must be a ${o.integer ? 'whole number' : 'number'} from ${o.min} to ${o.max}, got ${String(raw)}`,
      );
    }
    number[o.name] = parsed;
  }
  if (problems.length > 0) throw new UsageError(problems.join('; '));
  const given = (name: string) => number[name] as number;
  const optional = (name: string, key: string) => (number[name] === undefined ? {} : { [key]: given(name) });
  return {
    instances: given('instances'),
    agentDelay: given('agent-delay'),
    ...optional('agent-rate', 'agentRate'),
    bootDelay: given('boot-delay'),
    fail: given('fail'),
    throttle: given('throttle'),
    loseEvents: given('lose-events'),
    duplicateEvents: given('duplicate-events'),
    ...optional('stand-in', 'standIn'),
    timeScale: given('time-scale'),
    ...optional('port', 'port'),
    timeout: given('timeout'),
    keep: values.keep === true,
  };
}

/** `--port -1` becomes `--port=-1`: a negative value, refused by its bounds, not an unknown option `-1`. */
function joinNegativeValues(argv: readonly string[]): string[] {
  const args: string[] = [];
  for (const arg of argv) {
    const previous = args.at(-1);
    if (/^-\d/.test(arg) && NUMBER_OPTIONS.some((o) => previous === `--${o.name}`)) {
      args[args.length - 1] = `${previous}=${arg}`;
    } else {
      args.push(arg);
    }
  }
  return args;
}
