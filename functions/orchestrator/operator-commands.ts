import { type CommandInvocation, ListCommandInvocationsCommand } from '@aws-sdk/client-ssm';
import { failureOutput, readInvocation } from './commands';
import type { FinishedCommand } from './completion';
import { managedGroup } from './config';
import { isFullSha, resolvedSha } from './deployment-steps';
import { type AdvanceOutcome, advanceDeployment } from './deployments';
import type { Deps } from './deps';
import { type DeployResult, tagDeployResults } from './revision-tags';

/** What a finished command without lifecycle context (an operator's) led to. */
export type OperatorCommandOutcome =
  /** A command that names no group: a redeploy sent before redeploys named theirs. */
  | { outcome: 'manual-redeploy-finished'; status: string }
  | { outcome: 'operator-command-finished'; status: string; group: string; deployment: AdvanceOutcome };

/** Failed runs whose output a finished operator command logs. */
const FAILED_RUNS_LOGGED = 5;

/**
 * A finished operator command (deployment phase, restore, redeploy, drift repair): each failed
 * run is logged with its instance, SHA, exit code, reason and output tail, and the group's
 * deployment in flight, if any, is moved on. Its parameters only claim a group; moving a
 * deployment on reads every status from SSM itself, so a false claim costs reads, nothing else.
 */
export async function finishOperatorCommand(
  deps: Deps,
  command: FinishedCommand,
): Promise<OperatorCommandOutcome> {
  const { commandId, status, parameters } = command;
  const groupName = parameters.autoScalingGroupName;
  const keys = {
    commandId,
    status,
    revision: parameters.revision || '(pinned or branch head)',
    ...(groupName && { group: groupName }),
  };
  // The command's runs, listed at most once for the failed runs' log and the tags alike.
  let listed: Promise<CommandInvocation[]> | undefined;
  const invocations = () => {
    listed ??= listInvocations(deps, commandId);
    return listed;
  };
  if (status === 'Success')
    deps.logger.info(groupName ? `operator command ${status}` : `manual redeploy ${status}`, keys);
  else await logFailedRuns(deps, command, keys, invocations);
  if (!groupName) return { outcome: 'manual-redeploy-finished', status };
  await tagResults(deps, command, invocations);
  if (!managedGroup(deps.config, groupName)) {
    deps.logger.error(`moves no deployment: group ${groupName} is not managed by selfdeploy`, keys);
    return {
      outcome: 'operator-command-finished',
      status,
      group: groupName,
      deployment: { outcome: 'none' },
    };
  }
  const deployment = await advanceDeployment(deps, groupName);
  if (deployment.outcome !== 'none') deps.logger.info('deployment checked', { ...keys, ...deployment });
  return { outcome: 'operator-command-finished', status, group: groupName, deployment };
}

async function logFailedRuns(
  deps: Deps,
  command: FinishedCommand,
  keys: Record<string, unknown>,
  invocations: () => Promise<CommandInvocation[]>,
): Promise<void> {
  const { commandId, status } = command;
  let instanceIds = command.instanceIds;
  if (instanceIds?.length !== 1) {
    instanceIds = (await invocations()).flatMap((invocation) =>
      invocation.InstanceId && invocation.Status !== 'Success' ? [invocation.InstanceId] : [],
    );
  }
  const message = keys.group ? `operator command ${status}` : `manual redeploy ${status}`;
  if (instanceIds.length === 0) deps.logger.error(message, keys);
  for (const instanceId of instanceIds.slice(0, FAILED_RUNS_LOGGED)) {
    const output = await failureOutput(deps, commandId, instanceId);
    const result = 'deployResult' in output ? output.deployResult : undefined;
    deps.logger.error(message, {
      ...keys,
      instanceId,
      ...(result && { exitCode: result.exitCode, reason: result.reason }),
      ...output,
    });
  }
}

/** Tags each instance with what its run left; a failure to read or tag is logged and changes nothing else. */
async function tagResults(
  deps: Deps,
  command: FinishedCommand,
  invocations: () => Promise<CommandInvocation[]>,
): Promise<void> {
  try {
    await tagDeployResults(deps, await deployResults(deps, command, await invocations()));
  } catch (error) {
    deps.logger.warn('could not read the runs to tag their instances', {
      commandId: command.commandId,
      error: (error as Error).message,
    });
  }
}

/** The command's runs, with details (their exit codes). */
async function listInvocations(deps: Deps, commandId: string): Promise<CommandInvocation[]> {
  const output = await deps.clients.ssm.send(
    new ListCommandInvocationsCommand({ CommandId: commandId, Details: true }),
  );
  return output.CommandInvocations ?? [];
}

/**
 * What each instance's run left, for its tags: the exit codes of the listed runs, and only for
 * a successful run of a revision that is not a SHA, its result line. Runs a stopped command
 * never started changed nothing and are left out.
 */
async function deployResults(
  deps: Deps,
  command: FinishedCommand,
  invocations: readonly CommandInvocation[],
): Promise<DeployResult[]> {
  const { commandId, parameters } = command;
  const requested = isFullSha(parameters.revision) ? parameters.revision : undefined;
  const results: DeployResult[] = [];
  for (const invocation of invocations) {
    const { InstanceId: instanceId, Status: status } = invocation;
    if (!instanceId || !status || !['Success', 'Failed', 'TimedOut'].includes(status)) continue;
    const exitCode = invocation.CommandPlugins?.[0]?.ResponseCode;
    const requestedAt = invocation.RequestedDateTime ?? command.requestedAt;
    let sha = requested;
    if (!sha && status === 'Success') {
      const { StandardOutputContent } = await readInvocation(deps, commandId, instanceId);
      sha = resolvedSha(StandardOutputContent ?? '');
    }
    results.push({
      instanceId,
      result: status === 'Success' ? 'success' : 'failure',
      ...(exitCode !== undefined && exitCode >= 0 && { exitCode }),
      ...(sha && { sha }),
      ...(requestedAt && { requestedAt }),
    });
  }
  return results;
}
