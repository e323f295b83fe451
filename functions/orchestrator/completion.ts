import { ListCommandsCommand } from '@aws-sdk/client-ssm';
import { type DocumentParameters, fromCommandParameters } from '../shared/document-contract';
import { isTerminalStatus } from '../shared/event-patterns';
import { MetricName } from '../shared/metric-names';
import { commandInstanceIds, failureOutput } from './commands';
import { resultFor } from './decisions';
import type { Deps } from './deps';
import type { CommandStatusEvent, InvocationStatusEvent } from './events';
import { completeAction, type LifecycleActionResult } from './lifecycle';

export type CompletionOutcome =
  | { outcome: 'ignored'; reason: string }
  | { outcome: 'manual-redeploy-finished'; status: string }
  | { outcome: 'completed' | 'expired'; result: LifecycleActionResult; instanceIds: string[] };

/** A finished SelfDeploy command, however we learned of it. */
export interface FinishedCommand {
  readonly commandId: string;
  readonly status: string;
  readonly parameters: DocumentParameters;
  /** When known (invocation-level events, the reconciler); else read from SSM when needed. */
  readonly instanceId?: string;
  readonly requestedAt?: string;
}

/** An SSM status-change event: completes the lifecycle action the command carries. */
export async function handleCommandStatus(
  deps: Deps,
  event: CommandStatusEvent | InvocationStatusEvent,
): Promise<CompletionOutcome> {
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
  const raw =
    'parameters' in detail && detail.parameters ? detail.parameters : await readParameters(deps, commandId);
  return finishCommand(deps, {
    commandId,
    status: detail.status,
    parameters: fromCommandParameters(raw),
    ...(instanceId && { instanceId }),
    ...(detail['requested-date-time'] && { requestedAt: detail['requested-date-time'] }),
  });
}

/** The command-level event names its instances' ARNs in `resources`; one is ours. */
function soleInstance(resources: readonly string[] | undefined): string | undefined {
  const ids = (resources ?? []).flatMap((arn) => /:instance\/(i-[0-9a-f]{8,17})$/.exec(arn)?.[1] ?? []);
  return ids.length === 1 ? ids[0] : undefined;
}

async function readParameters(deps: Deps, commandId: string) {
  const output = await deps.clients.ssm.send(new ListCommandsCommand({ CommandId: commandId }));
  const command = output.Commands?.[0];
  if (!command) throw new Error(`command ${commandId} not found by ListCommands`);
  return command.Parameters;
}

/** Records the outcome of a finished command and completes its lifecycle action, if it has one. */
export async function finishCommand(deps: Deps, command: FinishedCommand): Promise<CompletionOutcome> {
  const { commandId, status, parameters } = command;
  const groupName = parameters.autoScalingGroupName;
  const succeeded = status === 'Success';
  const keys = { commandId, status, ...(groupName && { group: groupName }) };

  if (!groupName || !parameters.lifecycleHookName) {
    const log = succeeded ? deps.logger.info : deps.logger.error;
    log.call(deps.logger, `manual redeploy ${status}`, {
      ...keys,
      ...(!succeeded && command.instanceId && (await failureOutput(deps, commandId, command.instanceId))),
    });
    return { outcome: 'manual-redeploy-finished', status };
  }

  const token = parameters.lifecycleActionToken;
  // Without a token (a deploy the reconciler started), the action is named by instance.
  const instanceIds = command.instanceId
    ? [command.instanceId]
    : !token || !succeeded
      ? await commandInstanceIds(deps, commandId)
      : [];
  const instanceId = instanceIds[0];
  const result = resultFor(status, deps.config.groups[groupName]);

  const seconds = durationSeconds(command.requestedAt, deps.clock.now());
  const logKeys = { ...keys, ...(instanceId && { instanceId }), ...(seconds !== undefined && { seconds }) };
  if (succeeded) {
    deps.logger.info('self-deploy succeeded', logKeys);
  } else {
    deps.logger.error(`self-deploy ${status}`, {
      ...logKeys,
      ...(instanceId && (await failureOutput(deps, commandId, instanceId))),
    });
  }

  const outcome = await completeAction(
    deps,
    { group: groupName, hook: parameters.lifecycleHookName, ...(token ? { token } : { instanceId }) },
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
  return { outcome, result, instanceIds };
}

function durationSeconds(requestedAt: string | undefined, now: number): number | undefined {
  const started = requestedAt ? Date.parse(requestedAt) : Number.NaN;
  return Number.isNaN(started) ? undefined : Math.max(0, (now - started) / 1000);
}
