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
import { GROUP_DIMENSION } from '../functions/shared/metric-names';

/** The alarms of one installation: two per managed group, two for the orchestrator. */
export type AlarmName =
  | 'BootstrapFailed'
  | 'StuckInstances'
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

/** Every alarm's entry, in the runbook's order. */
export const ALARM_RUNBOOK: Readonly<Record<AlarmName, AlarmRunbook>> = {
  BootstrapFailed: {
    perGroup: true,
    cause:
      'A deploy failed on a new instance of the group. The instance was abandoned (Auto Scaling launches ' +
      'a replacement, which will likely fail the same way) or, with `onFailure: CONTINUE`, put in service anyway.',
    check: [
      "The orchestrator function's `self-deploy Failed` (or `TimedOut`, `Cancelled`) error line for the " +
        'instance: its exit code, status detail and the tail of both output streams. The full output is in ' +
        'the command-output log group, stream `<commandId>/<instanceId>/…`.',
      'The exit code, which says the step that failed (`self-deploy.sh --help`). `TimedOut` means the ' +
        'deploy, boot wait included, ran longer than `executionTimeout`.',
    ],
    act: [
      'If a bad revision is the cause, pin a good one (the pinned-revision parameter) or fix the branch; ' +
        'new launches pick it up at once. Watch the next launch on the dashboard.',
    ],
    details: [
      'What each exit code means here:',
      '',
      ...Object.entries(EXIT_CODE_GUIDANCE).map(
        ([name, guidance]) =>
          `- ${SELF_DEPLOY_EXIT_CODES[name as keyof typeof EXIT_CODE_GUIDANCE]}: ${guidance}`,
      ),
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
      "`agent-not-ready`: check the instance's role, agent and route to SSM. `send-refused`: check its " +
        "`aws:autoscaling:groupName` tag and the function role's SendCommand statement. `deploy-overdue`: " +
        'read the command in Run Command history. `failed`: read the reconcile error line. No data: check ' +
        'the `FunctionErrors` alarm and the reconcile schedule rule.',
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
      'A `ReconcileError` ("reconcile could not handle …") names the instances (and warm pools) one ' +
        'reconcile run could not handle; it is thrown only after every other instance was handled and ' +
        '`StuckInstances` was published, and the next run tries them again.',
    ],
  },
  QueueBacklog: {
    perGroup: false,
    cause:
      "The event queue's oldest message has waited a whole visibility timeout: a message the function failed " +
      'on came back (it goes to the dead-letter queue after ' +
      `${MAX_RECEIVE_COUNT} receives, hours later), or the mapping cannot keep up. An agent wait never ages: ` +
      'each look puts it back as a new message.',
    check: [
      "The function's `queue message failed` error lines, which name each failed message and its error.",
      "The mapping's throttles and the function's errors on the dashboard; whether the mapping is enabled.",
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

/** CloudFormation's limit on AlarmDescription. */
export const ALARM_DESCRIPTION_MAX = 1024;

/** An alarm's name in the runbook. */
export const runbookTitle = (name: AlarmName): string =>
  ALARM_RUNBOOK[name].perGroup ? `<group>${name}` : name;

/** Plain text for a notification: markdown backticks and emphasis dropped. */
const plain = (text: string) => text.replace(/[`*]/g, '');

/**
 * The alarm's CloudWatch description: the entry's cause, what to check and what to do, in the
 * runbook's words, and where the rest is. The notification names the group itself (its
 * dimensions), so the text is the same for every group and its length is known.
 */
export function alarmDescription(name: AlarmName): string {
  const entry = ALARM_RUNBOOK[name];
  const subject = entry.perGroup
    ? `selfdeploy ${name} (the group is the alarm's ${GROUP_DIMENSION} dimension)`
    : `selfdeploy ${name}`;
  return plain(
    [
      `${subject}: ${entry.cause}`,
      `Check: ${entry.check.join(' ')}`,
      `Do: ${entry.act.join(' ')}`,
      `Runbook: docs/operations.md, ${runbookTitle(name)}.`,
    ].join(' '),
  );
}

const START =
  '<!-- alarm runbook: generated from infra/alarm-runbook.ts (npx tsx infra/alarm-runbook.ts --write) -->';
const END = '<!-- end of alarm runbook -->';
export const OPERATIONS_DOC = join(__dirname, '..', 'docs', 'operations.md');

/** The runbook section of docs/operations.md, markers included. */
export function runbookSection(): string {
  const numbered = (items: readonly string[]) => items.map((item, index) => `${index + 1}. ${item}`);
  const entries = (Object.keys(ALARM_RUNBOOK) as AlarmName[]).flatMap((name) => {
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
