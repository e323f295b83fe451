/**
 * What each selfdeploy alarm means and what to do about it, written once. The CloudWatch
 * alarm descriptions (infra/monitoring.ts) and the runbook section of docs/operations.md are
 * both made from it: the section is generated (`npx tsx infra/alarm-runbook.ts --write`) and
 * test/infra/alarms-docs.test.ts fails when the doc or a synthesized description differs.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MAX_RECEIVE_COUNT } from '../functions/shared/event-queue';
import { SELF_DEPLOY_EXIT_CODES } from '../functions/shared/exit-codes';
import { TOP_LEVEL_SETTINGS } from '../functions/shared/group-settings';
import { GROUP_DIMENSION } from '../functions/shared/metric-names';

/** The alarms of one installation: five per managed group, three for the orchestrator. */
export type AlarmName =
  | 'BootstrapFailed'
  | 'FailureStreak'
  | 'BootstrapTime'
  | 'StuckInstances'
  | 'DeployFailed'
  | 'FunctionErrors'
  | 'QueueBacklog'
  | 'DeadLetters';

/** One alarm's runbook entry. Markdown (backticks only) in every text. */
export interface AlarmRunbook {
  /** Whether there is one alarm per managed group (named `<group><AlarmName>` in the runbook). */
  readonly perGroup: boolean;
  /** What firing means. */
  readonly cause: string;
  /** What to check, in order. */
  readonly check: readonly string[];
  /** What to do. */
  readonly act: readonly string[];
  /** More than an alarm description has room for: in the runbook only. */
  readonly details?: readonly string[];
}

/** What the runbook says of each exit code a failed bootstrap can carry (all but 0). */
const EXIT_CODE_GUIDANCE: Record<Exclude<keyof typeof SELF_DEPLOY_EXIT_CODES, 'success'>, string> = {
  unexpected: 'unexpected error; the output names the line.',
  invalidInput: 'invalid input, or an app user that is root or has sudo rules.',
  missingPrerequisite: 'missing prerequisite on the image.',
  lockTimeout: 'lock timeout (a run for another wait held it).',
  localhostTrust: 'localhost SSH trust.',
  parameterStore: 'Parameter Store (pinned revision or deploy key: permissions, name, KMS key).',
  revision: 'revision not found.',
  gemInstall: 'gem install.',
  deployCommand: 'the deploy command itself (the message says where `current` is now).',
  verification: '`current/REVISION` not the target afterwards.',
  bootNotFinished:
    '**boot did not finish**: `cloud-init status --wait` (or the configured `bootCheckCommand`) ' +
    'failed, or boot took longer than `bootWaitSeconds`. Read `/var/log/cloud-init-output.log` on a ' +
    'replacement: usually the user data itself fails. If boot is just slow, raise `bootWaitSeconds` ' +
    '(it counts inside `executionTimeout`).',
  healthCheck:
    '**health check failed**: the deploy finished but `healthCheckUrl` did not answer 2xx within ' +
    '`healthCheckAttempts` × `healthCheckIntervalSeconds`; the last curl error is in the output. The ' +
    'app did not start, listens elsewhere, or needs longer to boot.',
  sameWaitInProgress:
    'never reaches this alarm: another run for the same wait was in progress, and completion ignores it.',
  noResult:
    '**no result**: the document could not write the script (disk full: check `/tmp`) or the script ' +
    'exited 0 without writing its result (it was cut short). Nothing is known to be deployed; the ' +
    'instance was treated as failed.',
};

const EXIT = SELF_DEPLOY_EXIT_CODES;

/** The CLI, as an operator runs it from a clone (its `--function` or SELFDEPLOY_FUNCTION names the stack's function). */
const cli = (command: string) => `\`npx selfdeploy ${command}\``;

/** The Logs Insights query over the function's log group that finds a group's failed launch deploys. */
const FAILED_BOOTSTRAPS_QUERY = [
  '```',
  'fields @timestamp, instanceId, responseCode, statusDetails, stderrTail, stdoutTail',
  '| filter group = "<group>" and message like /^self-deploy (Failed|TimedOut|Cancelled)/',
  '| sort @timestamp desc',
  '| limit 20',
  '```',
];

/** Every alarm's entry, in the runbook's order. */
export const ALARM_RUNBOOK: Readonly<Record<AlarmName, AlarmRunbook>> = {
  BootstrapFailed: {
    perGroup: true,
    cause:
      'A deploy failed on a new instance of the group. The instance was abandoned (Auto Scaling launches ' +
      'a replacement, which will likely fail the same way) or, with `onFailure: CONTINUE`, put in service anyway.',
    check: [
      `${cli('logs --group <group> --instance <instanceId>')}, or the function's \`self-deploy Failed\` ` +
        '(`TimedOut`, `Cancelled`) line for the instance (query below): exit code, status detail, output tails.',
      'The exit code says the step that failed (below; `self-deploy.sh --help`). `TimedOut`: the deploy, ' +
        'boot wait included, outlasted `executionTimeout`.',
    ],
    act: [
      `Launches deploy the group's release: if the release is the cause, roll back, ` +
        `${cli('rollback --group <group>')}; new launches deploy the previous release at once. ` +
        'With `follow: branch`, fix the branch instead. If every launch fails, see `<group>FailureStreak`.',
    ],
    details: [
      "The query (CloudWatch Logs Insights, the function's log group) that finds the group's failed launch " +
        'deploys, newest first, with the instance, exit code and the failing line at the end of the output:',
      '',
      ...FAILED_BOOTSTRAPS_QUERY,
      '',
      'The full output is in the command-output log group, stream `<commandId>/<instanceId>/…`. What each ' +
        'exit code means here:',
      '',
      ...Object.entries(EXIT_CODE_GUIDANCE).map(
        ([name, guidance]) =>
          `- ${SELF_DEPLOY_EXIT_CODES[name as keyof typeof EXIT_CODE_GUIDANCE]}: ${guidance}`,
      ),
    ],
  },
  FailureStreak: {
    perGroup: true,
    cause:
      `At least \`failureStreak\` (${TOP_LEVEL_SETTINGS.failureStreak.default} by default) bootstraps of the group failed within an hour and none ` +
      'succeeded: every new instance fails, is abandoned and replaced, and its replacement fails too (the ' +
      'replacement loop). The group cannot add capacity.',
    check: [
      `${cli('status --group <group>')}: the release, any deployment in flight, and each instance's last ` +
        'deploy result. Then whether every failure has the same exit code (the `<group>BootstrapFailed` query).',
    ],
    act: [
      `The release fails (exit ${EXIT.revision}, ${EXIT.gemInstall}, ${EXIT.deployCommand}, ` +
        `${EXIT.verification}, ${EXIT.healthCheck}): roll back, ${cli('rollback --group <group>')}. Anything else (image, role, ` +
        `network, Parameter Store, selfdeploy itself): pause, ${cli('pause --group <group> --reason "<why>"')}; ` +
        `launches then serve the image's code without a deploy. Fix it, then ${cli('resume --group <group>')}.`,
    ],
    details: [
      '**What "streak" means here.** CloudWatch cannot count a sequence, so the alarm is metric math over ' +
        "the group's `BootstrapFailed` and `BootstrapSucceeded` sums in one period of an hour: " +
        '`IF(succeeded > 0, 0, failed) >= failureStreak`, missing data counting as 0. A loop turns in minutes ' +
        '(launch, boot, a deploy that fails), so an hour holds several turns, and a scale-out of many instances ' +
        'that all fail fires it at once. One success in the hour means the group can deploy and the failures ' +
        'belong to instances (`<group>BootstrapFailed` fires on each). Deploys that fail only at ' +
        '`executionTimeout` fit fewer turns in an hour: lower `failureStreak` if yours do.',
      '',
      '**Roll back or pause.** Roll back when the release is what fails: the previous release is known to ' +
        'deploy, and the loop stops with the next launch. Pause when the deploy cannot succeed whatever the ' +
        'release (the image lacks a prerequisite, the role or the network blocks SSM or Parameter Store, ' +
        'selfdeploy itself fails): launches go into service with `CONTINUE` and no deploy, counted by ' +
        '`LaunchedWithoutDeploy`, and run the code baked into the image, however old. Pause only when that code ' +
        'serving beats having no capacity. After `resume`, the instances launched meanwhile show as drift in ' +
        '`status`; the next deploy or reconcile run brings them to the release.',
      '',
      `**When neither is possible at once**, stop the loop's cost: \`aws autoscaling suspend-processes ` +
        '--auto-scaling-group-name <group> --scaling-processes Launch` (no new instances at all, so no ' +
        'scale-out either); `resume-processes` undoes it.',
    ],
  },
  BootstrapTime: {
    perGroup: true,
    cause:
      "The p90 of the group's bootstrap duration (a command's request to its end) within an hour is above " +
      "the group's `bootstrapBudget`: new instances take that long to serve, so scale-outs trail the load " +
      'that started them.',
    check: [
      "The dashboard's bootstrap duration widget: one slow instance, or all of them.",
      `The slow run's output, ${cli('logs --group <group> --instance <instanceId>')}, or the query below: the ` +
        'step that took the time (boot wait, gem install, asset compilation, migrations, health check retries).',
    ],
    act: [
      'Move what every deploy repeats into the image (gems, compiled assets), so that a launch only fetches ' +
        'and links the release; or raise `bootstrapBudget` if the time is expected.',
    ],
    details: [
      'The query (CloudWatch Logs Insights, the command-output log group) that lists the longest runs, each ' +
        'stream being `<commandId>/<instanceId>/…`:',
      '',
      '```',
      'stats (max(@timestamp) - min(@timestamp)) / 1000 as seconds by @logStream',
      '| sort seconds desc',
      '| limit 20',
      '```',
      '',
      'An hour holds enough bootstraps during a scale-out for a p90 to mean something; with a single launch ' +
        'in the hour, its own duration is the p90.',
    ],
  },
  StuckInstances: {
    perGroup: true,
    cause:
      'Instances of the group have waited in `Pending:Wait` or `Warmed:Pending:Wait` with nothing moving ' +
      'them for longer than a launch waits for an SSM agent (`agentWait`) plus one alarm period. Or the ' +
      'alarm has no data: the reconciler stopped running.',
    check: [
      "The reconciler's `reconcile finished` log line: each instance's outcome is `agent-not-ready` (SSM " +
        'agent not online), `send-refused` (SendCommand refused although the agent is online), ' +
        "`deploy-overdue` (a deploy ran past its deadline) or `failed` (the reconciler's calls for it failed).",
    ],
    act: [
      "`agent-not-ready`: the instance's role, agent and route to SSM. `send-refused`: its " +
        "`aws:autoscaling:groupName` tag and the function role's SendCommand statement. `deploy-overdue`: " +
        'the command in Run Command history. `failed`: the reconcile error line. No data: the ' +
        '`FunctionErrors` alarm and the reconcile schedule rule.',
    ],
    details: [
      'In detail:',
      '',
      '- `agent-not-ready`: the instance role has `AmazonSSMManagedInstanceCore`, the agent runs ' +
        '(`systemctl status amazon-ssm-agent`), and the subnet reaches the SSM endpoints (internet or VPC ' +
        'endpoints for `ssm`, `ssmmessages`, `ec2messages`). Large scale-outs register slowly; the alarm ' +
        'clears as agents come online.',
      "- `send-refused`: the orchestrator's role may send the document only to instances whose " +
        '`aws:autoscaling:groupName` tag (condition key `ssm:resourceTag/aws:autoscaling:groupName`) names ' +
        "a managed group. Check the instance's tags (Auto Scaling sets that one itself) and that the " +
        "function role's SendCommand statement is intact (nobody edited the role or its policy outside the stack).",
      '- `deploy-overdue`: look at the running command in Run Command history and its output in the ' +
        'command-output log group.',
      '- `failed`: the `reconcile could not handle a waiting instance` error line names the instance and ' +
        'the AWS error (access denied: the role; throttling: retried next run). The other instances were ' +
        'still handled, and `FunctionErrors` fires with a `ReconcileError` naming them.',
      '- No data: check the `FunctionErrors` alarm and that the reconcile schedule rule is enabled.',
      '',
      "The hook's timeout ends every wait with `ABANDON` at the latest.",
    ],
  },
  DeployFailed: {
    perGroup: true,
    cause:
      'An operator deployment (`deploy` or `rollback`) of the group failed. It stopped at the first failed ' +
      'instance, left the release unchanged and sent the failed instances back to it; new launches still ' +
      'deploy the release.',
    check: [
      `${cli('status --group <group>')}: the last deployment, each failed instance with its exit code and ` +
        `reason, and instances not on the release (drift). Then ${cli('logs --group <group> --instance <instanceId>')} ` +
        "for the failing line, or the function's `deploy failed` line (query below).",
    ],
    act: [
      `Fix the revision and deploy again, ${cli('deploy <revision> --group <group>')}; nothing needs ` +
        'rolling back. An instance still on another SHA is brought to the release by the next reconcile run.',
    ],
    details: [
      "The query (CloudWatch Logs Insights, the function's log group):",
      '',
      '```',
      'fields @timestamp, deploymentId, instanceId, sha, exitCode, reason, outputTail',
      '| filter group = "<group>" and message = "deploy failed"',
      '| sort @timestamp desc',
      '| limit 20',
      '```',
      '',
      'Migrations ran on the canary only; if the canary failed after running them, they stay applied (a ' +
        'rollback does not reverse migrations either): the release must work with them, which is why ' +
        'migrations expand first and contract in a later release.',
    ],
  },
  FunctionErrors: {
    perGroup: false,
    cause:
      'The orchestrator function threw: a reconcile run, a console action, or a whole batch of the event ' +
      'queue (a configuration error at cold start, a timeout). Lambda retries a reconcile run twice, then ' +
      "it goes to the dead-letter queue; a batch's messages come back after the queue's visibility timeout. " +
      'A single queue message that fails is not a function error (see `DeadLetters`).',
    check: [
      "The `orchestrator failed` or `rejected input` line in the function's log group. A configuration " +
        'error fails every cold start with one line naming every problem. Throttling and access denials ' +
        'name the AWS call.',
    ],
    act: [
      'An access denial after a code change means the role needs that call (the infra tests say so first).',
    ],
    details: [
      'A `ReconcileError` ("reconcile could not handle …") names the instances (and warm pools) one ' +
        'reconcile run could not handle; it is thrown only after every other instance was handled and ' +
        '`StuckInstances` was published, and the next run tries them again.',
    ],
  },
  QueueBacklog: {
    perGroup: false,
    cause:
      'The oldest message of an event queue (launches, or status events) has waited a whole visibility timeout: a message the function failed ' +
      'on came back (it goes to the dead-letter queue after ' +
      `${MAX_RECEIVE_COUNT} receives, hours later), or the mapping cannot keep up. An agent wait never ages: ` +
      'each look puts it back as a new message.',
    check: [
      "The function's `queue message failed` error lines, which name each failed message and its error.",
      "Either mapping's throttles and the function's errors on the dashboard; whether both mappings are enabled.",
    ],
    act: [
      'Fix the failing cause (the reconciler repairs lifecycle waits meanwhile); if the mapping is throttled, ' +
        'raise maxConcurrency or reservedConcurrency.',
    ],
  },
  DeadLetters: {
    perGroup: false,
    cause:
      `Messages are in the dead-letter queue: event-queue messages (launch or status events, agent waits) the ` +
      `function failed on ${MAX_RECEIVE_COUNT} times, events EventBridge could not deliver, or reconcile runs ` +
      "that failed after Lambda's two retries. An agent not ready yet never sends a message there.",
    check: [
      "The function's `queue message failed` error lines, which name each failed message and its error.",
      'The messages (SQS console, "Poll for messages"): their attributes say where each came from ' +
        '(docs/operations.md, "The event queue and its dead-letter queue").',
    ],
    act: [
      'Fix the cause. While instances still wait, redrive the messages to the event queue (console "Start ' +
        'DLQ redrive" with the event queue as custom destination, or `aws sqs start-message-move-task`); ' +
        'delete scheduled events instead. Once no instance waits, purge the queue: the reconciler has ' +
        "repaired what it could, and the hook's timeout ended the rest.",
    ],
  },
};

/** Every alarm name, in the runbook's order. */
export const ALARM_NAMES = Object.keys(ALARM_RUNBOOK) as readonly AlarmName[];

/** CloudFormation's limit on AlarmDescription. */
export const ALARM_DESCRIPTION_MAX = 1024;

/** An alarm's name in the runbook. */
const runbookTitle = (name: AlarmName): string => (ALARM_RUNBOOK[name].perGroup ? `<group>${name}` : name);

/** An alarm's runbook heading, as a renderer such as GitHub anchors it: `<group>BootstrapFailed` → `groupbootstrapfailed`. */
export const runbookAnchor = (name: AlarmName): string =>
  runbookTitle(name)
    .toLowerCase()
    .replace(/[^a-z0-9 _-]/g, '')
    .replace(/ /g, '-');

/** Where an alarm's runbook entry is: `<runbookBaseUrl>#<anchor>`, else the doc's path in the repository. */
const runbookLink = (name: AlarmName, runbookBaseUrl?: string): string =>
  `${runbookBaseUrl ?? 'docs/operations.md'}#${runbookAnchor(name)}`;

/** Plain text for a notification: markdown backticks and emphasis dropped. */
const plain = (text: string) => text.replace(/[`*]/g, '');

/**
 * The alarm's CloudWatch description: the entry's cause, what to check and what to do, in the
 * runbook's words, and a link to the entry (`runbookBaseUrl`, the construct prop) for the rest. The notification names the group itself (its
 * dimensions), so the text is the same for every group and its length is known.
 */
export function alarmDescription(name: AlarmName, runbookBaseUrl?: string): string {
  const entry = ALARM_RUNBOOK[name];
  const subject = entry.perGroup
    ? `selfdeploy ${name} (the group is the alarm's ${GROUP_DIMENSION} dimension)`
    : `selfdeploy ${name}`;
  const text = plain(
    [`${subject}: ${entry.cause}`, `Check: ${entry.check.join(' ')}`, `Do: ${entry.act.join(' ')}`].join(' '),
  );
  const link = ` Runbook: ${runbookLink(name, runbookBaseUrl)}`;
  // The link must survive a long runbookBaseUrl: the text gives way (the runbook has all of it).
  const room = ALARM_DESCRIPTION_MAX - link.length;
  return `${text.length <= room ? text : `${text.slice(0, room - 1)}…`}${link}`;
}

const START =
  '<!-- alarm runbook: generated from infra/alarm-runbook.ts (npx tsx infra/alarm-runbook.ts --write) -->';
const END = '<!-- end of alarm runbook -->';
export const OPERATIONS_DOC = join(__dirname, '..', 'docs', 'operations.md');

/** The runbook section of docs/operations.md, markers included. */
export function runbookSection(): string {
  const numbered = (items: readonly string[]) => items.map((item, index) => `${index + 1}. ${item}`);
  const entries = ALARM_NAMES.flatMap((name) => {
    const entry = ALARM_RUNBOOK[name];
    return [
      `### \`${runbookTitle(name)}\``,
      '',
      entry.cause,
      '',
      'Check:',
      '',
      ...numbered(entry.check),
      '',
      'Do:',
      '',
      ...numbered(entry.act),
      '',
      ...(entry.details ? [...entry.details, ''] : []),
    ];
  });
  return [START, '', ...entries, END].join('\n');
}

/** The doc's current runbook section, or undefined when its markers are missing. */
export function docRunbookSection(doc: string): string | undefined {
  const start = doc.indexOf(START);
  const end = doc.indexOf(END);
  return start < 0 || end < start ? undefined : doc.slice(start, end + END.length);
}

if (require.main === module && process.argv.includes('--write')) {
  const doc = readFileSync(OPERATIONS_DOC, 'utf8');
  const current = docRunbookSection(doc);
  if (current === undefined) throw new Error(`${OPERATIONS_DOC} has no alarm runbook markers`);
  writeFileSync(OPERATIONS_DOC, doc.replace(current, runbookSection()));
}
