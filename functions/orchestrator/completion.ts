import { type Command, ListCommandsCommand } from '@aws-sdk/client-ssm';
import { type DocumentParameters, fromCommandParameters } from '../shared/document-contract';
import { isTerminalStatus } from '../shared/event-patterns';
import { NO_VERDICT_EXIT_CODES } from '../shared/exit-codes';
import type { LifecycleResult } from '../shared/lifecycle-result';
import { MetricName } from '../shared/metric-names';
import { SHA_PATTERN } from '../shared/operator-actions';
import { commandInstanceIds, failureFields, failureOutput, readInvocation } from './commands';
import { type GroupConfig, managedGroup } from './config';
import { resultFor } from './decisions';
import { resolvedSha } from './deployment-steps';
import type { Deps } from './deps';
import type { CommandStatusEvent, InvocationStatusEvent } from './events';
import { recordFirstRelease } from './launch-revision';
import { completeAction } from './lifecycle';
import { finishOperatorCommand, type OperatorCommandOutcome } from './operator-commands';
import { type DeployResult, tagDeployResults } from './revision-tags';
import { mapLimited, settled } from './utilities';
import { type LaunchScan, scanLaunches, sentDuringCurrentWait } from './wait-start';

/** Commands finished at once in a batch: each may read an invocation and complete an action. */
const FINISH_CONCURRENCY = 10;

/** What a finished command did to one instance's lifecycle wait. */
export type InstanceCompletion =
  /** `deployed`: what the run left on the instance, as its tags record it. */
  | { outcome: 'completed' | 'expired'; result: LifecycleResult; deployed?: DeployResult }
  /** The command may not speak for this instance's current wait; nothing was completed. */
  | { outcome: 'rejected'; reason: string }
  /** Another run for the same wait was in progress; that run's own result decides. */
  | { outcome: 'no-verdict' };

export type CompletionOutcome =
  | { outcome: 'ignored'; reason: string }
  | OperatorCommandOutcome
  | { outcome: 'rejected'; reason: string }
  | { outcome: 'lifecycle'; instances: Record<string, InstanceCompletion> };

/** A finished SelfDeploy command, however we learned of it. */
export interface FinishedCommand {
  readonly commandId: string;
  readonly status: string;
  readonly parameters: DocumentParameters;
  /** The instances it ran on, when known (invocation events, a one-instance command event, the reconciler). */
  readonly instanceIds?: readonly string[];
  readonly requestedAt?: Date;
}

/** An SSM status-change event: completes the wait of each instance the command ran on, if it may. */
export async function handleCommandStatus(
  deps: Deps,
  event: CommandStatusEvent | InvocationStatusEvent,
): Promise<CompletionOutcome> {
  const command = await finishedCommandOf(deps, event);
  return 'outcome' in command ? command : finishCommand(deps, command);
}

/**
 * The finished command a status event reports, or why the event is ignored: not the
 * SelfDeploy document, or a status that is not final.
 */
export async function finishedCommandOf(
  deps: Deps,
  event: CommandStatusEvent | InvocationStatusEvent,
): Promise<FinishedCommand | { outcome: 'ignored'; reason: string }> {
  const { detail } = event;
  const commandId = detail['command-id'];
  const instanceId = 'instance-id' in detail ? detail['instance-id'] : soleInstance(event.resources);
  const keys = { commandId, ...(instanceId && { instanceId }), status: detail.status };
  if (detail['document-name'] !== deps.config.documentName) {
    deps.logger.info(`ignored: document ${detail['document-name']} is not ${deps.config.documentName}`, keys);
    return { outcome: 'ignored', reason: 'not the SelfDeploy document' };
  }
  if (!isTerminalStatus(detail.status)) {
    deps.logger.info(`ignored: status ${detail.status} is not final`, keys);
    return { outcome: 'ignored', reason: `status ${detail.status} is not final` };
  }
  // The command-level event carries the parameters; the invocation-level one needs a read.
  // `requested-date-time` is SSM's own (unlike the envelope's `time`), so it may bound the wait.
  const eventParameters = 'parameters' in detail ? detail.parameters : undefined;
  const eventRequested = detail['requested-date-time'];
  const command = eventParameters && eventRequested ? undefined : await readCommand(deps, commandId);
  const requestedAt = eventRequested ? new Date(eventRequested) : command?.RequestedDateTime;
  return {
    commandId,
    status: detail.status,
    parameters: fromCommandParameters(eventParameters ?? command?.Parameters),
    ...(instanceId && { instanceIds: [instanceId] }),
    ...(requestedAt && !Number.isNaN(requestedAt.getTime()) && { requestedAt }),
  };
}

/**
 * Finishes several commands, reading each group's scaling activities once for all of them
 * rather than once per command: in a burst, a group's in-progress launches fill the first
 * pages of every scan. The result of each command is its outcome or the error that stopped it.
 */
export async function finishCommands(
  deps: Deps,
  commands: readonly FinishedCommand[],
): Promise<Array<CompletionOutcome | Error>> {
  // One scan per group, shared by exactly the commands it was made for: it covers only their
  // instances, so any other command finishes on a scan of its own.
  const scanOf = new Map<FinishedCommand, Promise<LaunchScan>>();
  for (const [groupName, named] of scanRequests(deps, commands)) {
    const back = new Date(Math.min(...named.map(({ requestedAt }) => requestedAt.getTime())));
    const scan = scanLaunches(
      deps,
      groupName,
      named.map(({ instanceId }) => instanceId),
      { back },
    );
    scan.catch(() => undefined); // each command awaiting it reports the error as its own
    for (const { command } of named) scanOf.set(command, scan);
  }
  const outcomes = await mapLimited(commands, FINISH_CONCURRENCY, (command) =>
    settled(async () => settleCommand(deps, command, await scanOf.get(command))),
  );
  await recordDeploys(
    deps,
    commands.map((command, index) => ({ command, outcome: outcomes[index] })),
  );
  return outcomes;
}

/** Per managed group, the commands whose wait a scan of its launches can decide. */
function scanRequests(deps: Deps, commands: readonly FinishedCommand[]) {
  const byGroup = new Map<string, { command: FinishedCommand; instanceId: string; requestedAt: Date }[]>();
  for (const command of commands) {
    const { parameters, instanceIds, requestedAt } = command;
    const group = managedGroup(deps.config, parameters.autoScalingGroupName);
    const instanceId = parameters.instanceId;
    if (!group || parameters.lifecycleHookName !== group.lifecycleHookName || !instanceId || !requestedAt)
      continue;
    if (instanceIds && !instanceIds.includes(instanceId)) continue;
    const named = byGroup.get(parameters.autoScalingGroupName) ?? [];
    named.push({ command, instanceId, requestedAt });
    byGroup.set(parameters.autoScalingGroupName, named);
  }
  return byGroup;
}

/** The command-level event names its instances' ARNs in `resources`; one alone is where it ran. */
function soleInstance(resources: readonly string[] | undefined): string | undefined {
  const ids = (resources ?? []).flatMap((arn) => /:instance\/(i-[0-9a-f]{8,17})$/.exec(arn)?.[1] ?? []);
  return ids.length === 1 ? ids[0] : undefined;
}

async function readCommand(deps: Deps, commandId: string): Promise<Command> {
  const output = await deps.clients.ssm.send(new ListCommandsCommand({ CommandId: commandId }));
  const command = output.Commands?.[0];
  if (!command) throw new Error(`command ${commandId} not found by ListCommands`);
  return command;
}

/**
 * Records the outcome of a finished command and completes the lifecycle waits it may speak
 * for (settleCommand), then, for a group with no release yet, records the first one and leaves
 * what its runs deployed on their instances' tags (recordDeploys). `scan`, when the caller has
 * one, covers the instances' launches since the command.
 */
export async function finishCommand(
  deps: Deps,
  command: FinishedCommand,
  scan?: LaunchScan,
): Promise<CompletionOutcome> {
  const outcome = await settleCommand(deps, command, scan);
  await recordDeploys(deps, [{ command, outcome }]);
  return outcome;
}

/**
 * Completes the lifecycle waits a finished command may speak for. Its parameters are only
 * claims (anyone allowed to send the document chooses them): it completes nothing unless its
 * group is managed, its hook is that group's hook, it ran on the instance it names, and it was
 * sent during that instance's current wait. The action is then named by that instance, never by
 * the command's token.
 */
async function settleCommand(
  deps: Deps,
  command: FinishedCommand,
  scan?: LaunchScan,
): Promise<CompletionOutcome> {
  const { commandId, status, parameters } = command;
  const groupName = parameters.autoScalingGroupName;
  const keys = { commandId, status, ...(groupName && { group: groupName }) };

  // No hook: an operator's command (deployment, redeploy, drift repair), not a launch's.
  if (!groupName || !parameters.lifecycleHookName) return finishOperatorCommand(deps, command);

  const group = managedGroup(deps.config, groupName);
  if (!group || parameters.lifecycleHookName !== group.lifecycleHookName) {
    const reason = group
      ? `hook ${parameters.lifecycleHookName} is not the group's selfdeploy hook ${group.lifecycleHookName}`
      : `group ${groupName} is not managed by selfdeploy`;
    deps.logger.error(`completes nothing: ${reason}`, { ...keys, hook: parameters.lifecycleHookName });
    return { outcome: 'rejected', reason };
  }

  const instanceIds = command.instanceIds ?? (await commandInstanceIds(deps, commandId));
  // Only the instance the command names can be its wait's instance; read its launches only then.
  const named = instanceIds.filter((id) => id === parameters.instanceId);
  const launches =
    scan ??
    (named.length > 0 && command.requestedAt
      ? await scanLaunches(deps, groupName, named, { back: command.requestedAt })
      : undefined);
  const instances: Record<string, InstanceCompletion> = {};
  for (const instanceId of instanceIds) {
    instances[instanceId] = await finishInstance(deps, command, group, instanceId, launches);
  }
  return { outcome: 'lifecycle', instances };
}

/** Why `command` may not speak for `instanceId`'s current wait; undefined when it may. */
function waitMismatch(
  command: Pick<FinishedCommand, 'parameters' | 'requestedAt'>,
  instanceId: string,
  launches: LaunchScan | undefined,
): string | undefined {
  const named = command.parameters.instanceId;
  if (named !== instanceId) {
    return named
      ? `the command names the wait of ${named} but ran on ${instanceId}`
      : `the command names no instance but ran on ${instanceId}`;
  }
  if (!launches || !sentDuringCurrentWait(launches, instanceId, command.requestedAt)) {
    const start = launches?.starts.get(instanceId);
    return start
      ? `stale command: requested ${command.requestedAt?.toISOString()}, before ${instanceId}'s current wait began (launch activity at ${start.toISOString()})`
      : `cannot tell that the command was sent during ${instanceId}'s current wait (no launch activity read back to ${command.requestedAt?.toISOString() ?? 'an unknown request time'})`;
  }
  return undefined;
}

async function finishInstance(
  deps: Deps,
  command: FinishedCommand,
  group: GroupConfig,
  instanceId: string,
  launches: LaunchScan | undefined,
): Promise<InstanceCompletion> {
  const { commandId, status, parameters } = command;
  const groupName = parameters.autoScalingGroupName;
  const seconds = durationSeconds(command.requestedAt, deps.clock.now());
  const logKeys = {
    commandId,
    status,
    group: groupName,
    instanceId,
    ...(seconds !== undefined && { seconds }),
  };

  const mismatch = waitMismatch(command, instanceId, launches);
  if (mismatch) {
    deps.logger.error(`completes nothing: ${mismatch}`, logKeys);
    return { outcome: 'rejected', reason: mismatch };
  }

  const succeeded = status === 'Success';
  let failure: Record<string, unknown> | undefined;
  if (status === 'Failed') {
    // Whether this run has a verdict at all decides what happens, so a failed read is
    // retried (the invocation throws) rather than guessed.
    const invocation = await readInvocation(deps, commandId, instanceId);
    if (NO_VERDICT_EXIT_CODES.has(invocation.ResponseCode ?? -1)) {
      deps.logger.info('another run for this wait is in progress; its own result decides', {
        ...logKeys,
        responseCode: invocation.ResponseCode,
      });
      return { outcome: 'no-verdict' };
    }
    failure = failureFields(deps, commandId, instanceId, invocation);
  } else if (!succeeded) {
    failure = await failureOutput(deps, commandId, instanceId);
  }

  const revision = parameters.revision || '(branch head)';
  if (failure) deps.logger.error(`self-deploy ${status}`, { ...logKeys, revision, ...failure });
  else deps.logger.info('self-deploy succeeded', { ...logKeys, revision });

  const result = resultFor(status, group);
  const outcome = await completeAction(
    deps,
    { group: groupName, hook: group.lifecycleHookName, instanceId },
    result,
    logKeys,
  );
  // Counted once per bootstrap: a repeated event, or the reconciler repairing a late one,
  // finds the action already ended and is counted as LifecycleActionExpired instead.
  if (outcome === 'completed') {
    deps.metrics.record(succeeded ? MetricName.BootstrapSucceeded : MetricName.BootstrapFailed, groupName);
    if (seconds !== undefined)
      deps.metrics.record(MetricName.BootstrapDuration, groupName, seconds, 'Seconds');
  }
  return { outcome, result, deployed: await deployResult(deps, command, instanceId, failure) };
}

/**
 * What a run left on its instance. The SHA is the command's revision when that is one (a launch
 * of a group with a release sends its exact SHA); otherwise (the branch head, a name) only the
 * run's result line says it, and only then is a successful run's output read — a failed run's
 * was read already.
 */
async function deployResult(
  deps: Deps,
  command: FinishedCommand,
  instanceId: string,
  failure: Record<string, unknown> | undefined,
): Promise<DeployResult> {
  const requested = command.parameters.revision;
  const exact = SHA_PATTERN.test(requested) ? requested : undefined;
  if (failure) {
    const reported = (failure.deployResult as Record<string, unknown> | undefined)?.revision;
    const sha = exact ?? (typeof reported === 'string' && SHA_PATTERN.test(reported) ? reported : undefined);
    const exitCode = failure.responseCode;
    return {
      instanceId,
      result: 'failure',
      ...(typeof exitCode === 'number' && { exitCode }),
      ...(sha && { sha }),
      ...(command.requestedAt && { requestedAt: command.requestedAt }),
    };
  }
  const sha = exact ?? (await reportedSha(deps, command.commandId, instanceId));
  return {
    instanceId,
    result: 'success',
    exitCode: 0,
    ...(sha && { sha }),
    ...(command.requestedAt && { requestedAt: command.requestedAt }),
  };
}

/** The SHA a successful run's result line reports; undefined (logged) when it cannot be read. */
async function reportedSha(deps: Deps, commandId: string, instanceId: string): Promise<string | undefined> {
  try {
    const invocation = await readInvocation(deps, commandId, instanceId);
    const sha = resolvedSha(invocation.StandardOutputContent ?? '');
    if (sha) return sha;
    deps.logger.warn('the run reports no deployed SHA', { commandId, instanceId });
  } catch (error) {
    deps.logger.warn('could not read the deployed SHA from the run', {
      commandId,
      instanceId,
      errorMessage: (error as Error).message,
    });
  }
  return undefined;
}

/**
 * After the lifecycle actions are completed, so nothing here changes a lifecycle result and
 * nothing here throws: records a group's first release from a successful run that deployed
 * its branch because the group had none (one create-if-absent per group, whoever wins), then
 * tags the instances of all the finished runs at once (one CreateTags per shared set of tags).
 */
async function recordDeploys(
  deps: Deps,
  finished: readonly { command: FinishedCommand; outcome: CompletionOutcome | Error | undefined }[],
): Promise<void> {
  const results: DeployResult[] = [];
  const firstReleases = new Map<string, string>();
  for (const { command, outcome } of finished) {
    if (!outcome || outcome instanceof Error || outcome.outcome !== 'lifecycle') continue;
    const groupName = command.parameters.autoScalingGroupName;
    const group = managedGroup(deps.config, groupName);
    for (const completion of Object.values(outcome.instances)) {
      if (!('deployed' in completion) || !completion.deployed) continue;
      const { deployed } = completion;
      results.push(deployed);
      if (
        group?.follow === 'release' &&
        deployed.result === 'success' &&
        deployed.sha &&
        !SHA_PATTERN.test(command.parameters.revision) &&
        !firstReleases.has(groupName)
      ) {
        firstReleases.set(groupName, deployed.sha);
      }
    }
  }
  // The release first: it is what later launches and deploys read; the tags only show it.
  for (const [groupName, sha] of firstReleases) await recordFirstRelease(deps, groupName, sha);
  if (results.length > 0) await tagDeployResults(deps, results);
}

function durationSeconds(requestedAt: Date | undefined, now: number): number | undefined {
  return requestedAt ? Math.max(0, (now - requestedAt.getTime()) / 1000) : undefined;
}
