import { Duration, RemovalPolicy, Token } from 'aws-cdk-lib';
import { type ConfigInput, configSchema } from '../functions/orchestrator/config';
import { parameterProblem } from '../functions/shared/document-contract';
import { SelfDeployError } from '../functions/shared/errors';
import { QUEUE_COUNT } from '../functions/shared/event-queue';
import {
  defaultHeartbeatSeconds,
  GROUP_SETTINGS,
  MAX_HEARTBEAT_SECONDS,
  TOP_LEVEL_SETTINGS,
} from '../functions/shared/group-settings';
import { buildSelfDeployDocument, type SelfDeployDocument, SelfDeployDocumentError } from './document';
import type { SelfDeployGroup, SelfDeployProps } from './props';

export { COMPLETION_GRACE_SECONDS, MAX_HEARTBEAT_SECONDS } from '../functions/shared/group-settings';

/** SelfDeploy settings that can only fail; the message names every problem of the configuration. */
export class SelfDeployPropsError extends SelfDeployError {}

/** Shortest execution timeout the orchestrator accepts. */
const MIN_EXECUTION_SECONDS = TOP_LEVEL_SETTINGS.executionTimeout.range[0];

/** Defaults of the construct's own settings, from the one table of settings (the document's are the builder's). */
export const DEFAULTS = {
  executionTimeout: Duration.seconds(TOP_LEVEL_SETTINGS.executionTimeout.default),
  agentWait: Duration.seconds(TOP_LEVEL_SETTINGS.agentWait.default),
  reconcileInterval: Duration.seconds(TOP_LEVEL_SETTINGS.reconcileInterval.default),
  functionTimeout: Duration.seconds(TOP_LEVEL_SETTINGS.functionTimeout.default),
  lifecycleHookName: GROUP_SETTINGS.lifecycleHookName.default,
  onFailure: GROUP_SETTINGS.onFailure.default,
  logRetention: TOP_LEVEL_SETTINGS.logRetention.default,
  logRemovalPolicy: RemovalPolicy[TOP_LEVEL_SETTINGS.logRemovalPolicy.default],
} as const;

/** How long the construct lets each step take. */
export interface Timings {
  readonly executionTimeoutSeconds: number;
  readonly agentWaitSeconds: number;
  readonly reconcileInterval: Duration;
  readonly functionTimeout: Duration;
}

/** The timings of `props`, defaults filled in. */
export function timingsOf(props: SelfDeployProps): Timings {
  return {
    executionTimeoutSeconds: (props.executionTimeout ?? DEFAULTS.executionTimeout).toSeconds(),
    agentWaitSeconds: (props.agentWait ?? DEFAULTS.agentWait).toSeconds(),
    reconcileInterval: props.reconcileInterval ?? DEFAULTS.reconcileInterval,
    functionTimeout: props.functionTimeout ?? DEFAULTS.functionTimeout,
  };
}

/** One group's entry in SELFDEPLOY_CONFIG. */
export type GroupConfigInput = ConfigInput['groups'][string];

/**
 * Throws one SelfDeployPropsError naming every problem of `props`; else returns the SelfDeploy
 * document they build, built once (building it is one of the checks).
 */
export function assertValidProps(props: SelfDeployProps): SelfDeployDocument {
  const { problems, document } = checkedProps(props);
  if (problems.length > 0 || document === undefined) {
    throw new SelfDeployPropsError(`selfdeploy settings are invalid: ${problems.join('; ')}`);
  }
  return document;
}

/**
 * Every problem of `props` that is known without an instance, one clause each, saying what to
 * change; empty when there is none. Each would otherwise fail the stack's deployment, the
 * function's cold start or every launch.
 */
export function selfDeployPropsProblems(props: SelfDeployProps): string[] {
  return checkedProps(props).problems;
}

function checkedProps(props: SelfDeployProps): { problems: string[]; document?: SelfDeployDocument } {
  const problems: string[] = [];
  const timings = timingsOf(props);
  const executionSeconds = timings.executionTimeoutSeconds;
  const neededSeconds = executionSeconds + timings.agentWaitSeconds;

  if (props.groups.length === 0) {
    problems.push('groups is empty: name at least one Auto Scaling group for selfdeploy to manage');
  }
  if (executionSeconds < MIN_EXECUTION_SECONDS) {
    problems.push(`executionTimeout is ${executionSeconds} s: give at least ${MIN_EXECUTION_SECONDS} s`);
  }
  if (neededSeconds > MAX_HEARTBEAT_SECONDS) {
    problems.push(
      `agentWait + executionTimeout is ${neededSeconds} s, but a lifecycle hook waits at most ` +
        `${MAX_HEARTBEAT_SECONDS} s between heartbeats: lower executionTimeout or agentWait`,
    );
  }
  const seen = new Set<string>();
  props.groups.forEach((settings, index) => {
    const label = `group ${groupLabel(settings.autoScalingGroup, index)}`;
    const given = settings.autoScalingGroup;
    const name = typeof given === 'string' ? given : given.autoScalingGroupName;
    // Names of groups built in this app are tokens: those are told apart by construct instead.
    const key = typeof given !== 'string' && Token.isUnresolved(name) ? given.node.path : name;
    if (seen.has(key)) problems.push(`${label} is listed twice: list each Auto Scaling group once`);
    seen.add(key);
    if (!Token.isUnresolved(name)) {
      const nameProblem = name === '' ? 'the name is empty' : parameterProblem('autoScalingGroupName', name);
      if (nameProblem) problems.push(`${label}: ${nameProblem}`);
    }
    problems.push(...groupProblems(label, settings, timings, props));
  });
  problems.push(...timingProblems(props, timings));
  if (
    props.alarmEmail !== undefined &&
    !Token.isUnresolved(props.alarmEmail) &&
    !EMAIL.test(props.alarmEmail)
  ) {
    problems.push(`alarmEmail ${JSON.stringify(props.alarmEmail)} is not an e-mail address`);
  }
  if (props.documentName !== undefined && RESERVED_DOCUMENT_PREFIX.test(props.documentName)) {
    problems.push(
      `documentName ${JSON.stringify(props.documentName)} starts with a prefix SSM reserves for AWS ` +
        '(aws, amazon, amzn): choose another name',
    );
  }
  problems.push(...alarmProblems(props));
  problems.push(...concurrencyProblems(props));
  problems.push(...deployKeyProblems(props));
  problems.push(...configProblems(props, timings));
  try {
    return { problems, document: buildSelfDeployDocument(props.document) };
  } catch (error) {
    if (!(error instanceof SelfDeployDocumentError)) throw error;
    problems.push(error.message);
    return { problems };
  }
}

/** The hook's heartbeat timeout for a group: as given, else the one default SELFDEPLOY_CONFIG assumes too. */
export function heartbeatSecondsOf(
  settings: SelfDeployGroup,
  timings: Pick<Timings, 'agentWaitSeconds' | 'executionTimeoutSeconds'>,
): number {
  return (
    settings.heartbeatTimeout?.toSeconds() ??
    defaultHeartbeatSeconds(timings.agentWaitSeconds, timings.executionTimeoutSeconds)
  );
}

/** A group's entry in SELFDEPLOY_CONFIG: the settings given, defaults left to the function. */
export function groupConfig(settings: SelfDeployGroup, heartbeatSeconds: number): GroupConfigInput {
  return {
    lifecycleHookName: settings.lifecycleHookName ?? DEFAULTS.lifecycleHookName,
    heartbeatTimeoutSeconds: heartbeatSeconds,
    onFailure: settings.onFailure ?? DEFAULTS.onFailure,
    ...(settings.environment !== undefined && { environment: settings.environment }),
    ...(settings.appUser !== undefined && { appUser: settings.appUser }),
    ...(settings.deployPath !== undefined && { deployPath: settings.deployPath }),
    ...(settings.appPath !== undefined && { appPath: settings.appPath }),
    ...(settings.healthCheckUrl !== undefined && { healthCheckUrl: settings.healthCheckUrl }),
    ...(settings.warmPool !== undefined && { warmPool: settings.warmPool }),
    ...(settings.follow !== undefined && { follow: settings.follow }),
    ...(settings.deployWith !== undefined && { deployWith: settings.deployWith }),
  };
}

/** How a group is named in messages: its name, else its construct id. */
function groupLabel(group: SelfDeployGroup['autoScalingGroup'], index: number): string {
  if (typeof group !== 'string') return group.node.id;
  return Token.isUnresolved(group) ? `groups[${index}]` : group;
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
// A fragment of its own would swallow the entry's anchor.
const RUNBOOK_URL = /^https?:\/\/[^\s#]+$/;
// CreateDocument refuses names starting with aws, amazon, amzn (AWSEC2, AWSSupport, ... included).
const RESERVED_DOCUMENT_PREFIX = /^(aws|amazon|amzn)/i;
// A key ARN: IAM authorises kms:Decrypt against the key itself, never against an alias.
const KEY_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key\/[A-Za-z0-9-]+$/;
// SELFDEPLOY_CONFIG spells these durations in seconds; the checks above name them as the props do.
const TIMINGS_CHECKED_ABOVE = new Set([
  'executionTimeoutSeconds',
  'agentWaitSeconds',
  'heartbeatTimeoutSeconds',
]);

function groupProblems(
  label: string,
  settings: SelfDeployGroup,
  timings: Timings,
  props: SelfDeployProps,
): string[] {
  const problems: string[] = [];
  const neededSeconds = timings.agentWaitSeconds + timings.executionTimeoutSeconds;
  const heartbeatSeconds = heartbeatSecondsOf(settings, timings);
  // A default heartbeat covers the deploy whenever the deploy fits in a hook at all (checked above).
  if (
    settings.heartbeatTimeout !== undefined &&
    (heartbeatSeconds < neededSeconds || heartbeatSeconds > MAX_HEARTBEAT_SECONDS)
  ) {
    problems.push(
      `${label}: heartbeatTimeout is ${heartbeatSeconds} s; it must cover agentWait + executionTimeout ` +
        `(${neededSeconds} s) and be at most ${MAX_HEARTBEAT_SECONDS} s: raise heartbeatTimeout or lower ` +
        'executionTimeout or agentWait',
    );
  }
  const deployPath = settings.deployPath ?? GROUP_SETTINGS.deployPath.default;
  const appPath = settings.appPath ?? GROUP_SETTINGS.appPath.default;
  if (deployPath === appPath) {
    problems.push(
      `${label}: deployPath and appPath are both ${deployPath}; the deploy checkout must not be ` +
        'the directory Capistrano deploys into: give them different paths',
    );
  }
  if (settings.bootstrapBudget !== undefined) {
    const budget = settings.bootstrapBudget.toSeconds();
    if (budget < 1 || budget >= timings.executionTimeoutSeconds) {
      problems.push(
        `${label}: bootstrapBudget is ${budget} s: give at least 1 s and less than executionTimeout ` +
          `(${timings.executionTimeoutSeconds} s), which stops a deploy before the alarm could see it take longer`,
      );
    }
  }
  if (settings.appUser === 'root' && props.document?.allowRootAppUser !== true) {
    problems.push(
      `${label}: appUser is root, which the instance script refuses (every launch would fail) because ` +
        "the repository's Gemfile and Capfile would run with root's powers: use a dedicated unprivileged user " +
        '(the default is deploy), or set document.allowRootAppUser',
    );
  }
  return problems;
}

function timingProblems(props: SelfDeployProps, timings: Timings): string[] {
  const problems: string[] = [];
  const intervalSeconds = timings.reconcileInterval.toSeconds();
  if (intervalSeconds < 60 || intervalSeconds % 60 !== 0) {
    problems.push(`reconcileInterval is ${intervalSeconds} s: give a whole number of minutes, at least 1`);
  }
  const heartbeats = props.groups.map((settings) => heartbeatSecondsOf(settings, timings));
  const shortest = Math.min(...heartbeats);
  if (heartbeats.length > 0 && intervalSeconds >= shortest) {
    problems.push(
      `reconcileInterval (${intervalSeconds} s) is not shorter than the shortest heartbeatTimeout (${shortest} s): ` +
        'an instance whose events were lost would time out before the reconciler sees it; lower reconcileInterval',
    );
  }
  const timeoutSeconds = timings.functionTimeout.toSeconds();
  const [fewestSeconds, mostSeconds] = TOP_LEVEL_SETTINGS.functionTimeout.range;
  if (timeoutSeconds < fewestSeconds || timeoutSeconds > mostSeconds) {
    problems.push(
      `functionTimeout is ${timeoutSeconds} s: Lambda allows up to ${mostSeconds} s; selfdeploy needs at least ${fewestSeconds} s`,
    );
  }
  return problems;
}

/** A group's bootstrap-time budget in seconds: as given, else the default, never reaching executionTimeout. */
export function bootstrapBudgetSecondsOf(
  settings: SelfDeployGroup,
  timings: Pick<Timings, 'executionTimeoutSeconds'>,
): number {
  return (
    settings.bootstrapBudget?.toSeconds() ??
    Math.min(GROUP_SETTINGS.bootstrapBudget.default, Math.floor(timings.executionTimeoutSeconds / 2))
  );
}

/** How many failed bootstraps, none succeeding, fire a group's failure-streak alarm. */
export function failureStreakOf(props: SelfDeployProps): number {
  return props.failureStreak ?? TOP_LEVEL_SETTINGS.failureStreak.default;
}

function alarmProblems(props: SelfDeployProps): string[] {
  const problems: string[] = [];
  const streak = failureStreakOf(props);
  if (!Number.isInteger(streak) || streak < 1) {
    problems.push(`failureStreak is ${streak}: give a whole number of failed bootstraps, at least 1`);
  }
  const base = props.runbookBaseUrl;
  if (base !== undefined && !Token.isUnresolved(base) && !RUNBOOK_URL.test(base)) {
    problems.push(
      `runbookBaseUrl ${JSON.stringify(base)} is not an http(s) URL without a fragment: give the address ` +
        'of docs/operations.md, e.g. https://github.com/<owner>/<repository>/blob/main/docs/operations.md',
    );
  }
  return problems;
}

/** The event source mapping's MaximumConcurrency (2–1000) and the function's reserved concurrency. */
export function concurrencyOf(props: SelfDeployProps): { maxConcurrency: number; reserved?: number } {
  return {
    maxConcurrency: props.maxConcurrency ?? Number(TOP_LEVEL_SETTINGS.maxConcurrency.default),
    ...(props.reservedConcurrency !== undefined && { reserved: props.reservedConcurrency }),
  };
}

function concurrencyProblems(props: SelfDeployProps): string[] {
  const { maxConcurrency, reserved } = concurrencyOf(props);
  const problems: string[] = [];
  if (
    !Number.isInteger(maxConcurrency) ||
    maxConcurrency < MIN_MAX_CONCURRENCY ||
    maxConcurrency > MAX_MAX_CONCURRENCY
  ) {
    problems.push(
      `maxConcurrency is ${maxConcurrency}: an event source mapping's MaximumConcurrency is a whole number from ${MIN_MAX_CONCURRENCY} to ${MAX_MAX_CONCURRENCY}`,
    );
  }
  if (reserved !== undefined) {
    if (!Number.isInteger(reserved) || reserved < 1) {
      problems.push(
        `reservedConcurrency is ${reserved}: give a whole number of executions, at least 1, or leave it out`,
      );
    } else if (reserved < maxConcurrency * QUEUE_COUNT) {
      problems.push(
        `reservedConcurrency ${reserved} is below ${QUEUE_COUNT} × maxConcurrency (${maxConcurrency * QUEUE_COUNT}): each of the ${QUEUE_COUNT} queues' mappings may run maxConcurrency executions, and they would be throttled by the function's own limit; lower maxConcurrency or reserve more`,
      );
    }
  }
  return problems;
}

function deployKeyProblems(props: SelfDeployProps): string[] {
  const key = props.deployKeyEncryptionKey;
  if (key === undefined) return [];
  const problems: string[] = [];
  if (typeof key === 'string' && !Token.isUnresolved(key) && !KEY_ARN.test(key)) {
    problems.push(
      `deployKeyEncryptionKey ${JSON.stringify(key)} is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>; ` +
        'not an alias): IAM authorises kms:Decrypt against the key',
    );
  }
  if (props.document?.deployKeyParameterName === undefined) {
    problems.push(
      'deployKeyEncryptionKey is set but document.deployKeyParameterName is not: name the SecureString ' +
        'parameter the key encrypts, or leave the key out',
    );
  }
  return problems;
}

/**
 * What the function's own configuration schema rejects (names, hook names, paths, the health
 * check URL, rate controls): synth refuses what the function would refuse at its first event.
 */
function configProblems(props: SelfDeployProps, timings: Timings): string[] {
  const labels = props.groups.map((settings, index) => groupLabel(settings.autoScalingGroup, index));
  // Group names are checked above (and may be tokens): index keys map each issue back to its group.
  const config = functionConfig(
    props,
    props.groups.map((settings, index) => [
      String(index),
      groupConfig(settings, heartbeatSecondsOf(settings, timings)),
    ]),
    // The default document name is made valid by construction.
    props.documentName ?? 'SelfDeploy-default',
    // The queue's URL is the construct's own; any URL stands in for it here.
    'https://sqs.us-east-1.amazonaws.com/123456789012/selfdeploy',
  );
  const result = configSchema.safeParse(config);
  if (result.success) return [];
  return result.error.issues
    .filter((issue) => !TIMINGS_CHECKED_ABOVE.has(String(issue.path.at(-1))))
    .map((issue) => {
      const [first, key, ...rest] = issue.path.map(String);
      if (first === 'groups' && key !== undefined && rest.length > 0) {
        return `group ${labels[Number(key)]}: ${rest.join('.')}: ${issue.message}`;
      }
      return `${issue.path.map(String).join('.')}: ${issue.message}`;
    });
}

/** The least and most MaximumConcurrency an SQS event source mapping accepts. */
const MIN_MAX_CONCURRENCY = 2;
const MAX_MAX_CONCURRENCY = 1000;

/** SELFDEPLOY_CONFIG for `props`, with the groups' names (tokens for groups built in this app). */
export function functionConfig(
  props: SelfDeployProps,
  groups: readonly (readonly [name: string, config: GroupConfigInput])[],
  documentName: string,
  waitQueueUrl: string,
): ConfigInput {
  const timings = timingsOf(props);
  return {
    documentName,
    waitQueueUrl,
    executionTimeoutSeconds: timings.executionTimeoutSeconds,
    agentWaitSeconds: timings.agentWaitSeconds,
    outputLogGroupName: outputLogGroupNameOf(props, documentName),
    ...(props.redeployMaxConcurrency !== undefined && {
      redeployMaxConcurrency: props.redeployMaxConcurrency,
    }),
    ...(props.redeployMaxErrors !== undefined && { redeployMaxErrors: props.redeployMaxErrors }),
    ...(props.releasePath !== undefined && { releasePath: props.releasePath }),
    groups: Object.fromEntries(groups),
  };
}

/** The command-output log group's name: as given, else named after the document. */
export function outputLogGroupNameOf(props: SelfDeployProps, documentName: string): string {
  return props.outputLogGroupName ?? `/selfdeploy/${documentName}`;
}
