import type { Command } from '@aws-sdk/client-ssm';
import { MetricName } from '../shared/metric-names';
import {
  agentStatuses,
  deployParameters,
  isAgentNotReady,
  isThrottled,
  selfDeployCommands,
  sendSelfDeploy,
} from './commands';
import type { GroupConfig } from './config';
import {
  backoffMs,
  commandComment,
  type Overrides,
  type Place,
  placeOfComment,
  readMetadata,
  warmPoolDecision,
} from './decisions';
import type { Deps } from './deps';
import type { LifecycleEvent } from './events';
import { completeAction, heartbeat, type LifecycleAction } from './lifecycle';

/** Time kept back from the invocation's remaining time to finish cleanly after the last attempt. */
const SAFETY_MARGIN_MS = 30_000;
/** Tolerance between this function's clock and SSM's timestamps. */
const CLOCK_SKEW_MS = 5_000;

export type LaunchOutcome =
  | { outcome: 'ignored'; reason: string }
  | { outcome: 'duplicate'; commandId: string }
  | { outcome: 'continued-without-deploy'; reason: string }
  | { outcome: 'abandoned'; reason: string }
  | StartOutcome;

export type StartOutcome =
  | { outcome: 'started'; commandId: string; agentWaitSeconds: number }
  | { outcome: 'duplicate'; commandId: string }
  | { outcome: 'agent-not-ready'; agentWaitSeconds: number }
  | { outcome: 'action-ended' };

/** One instance to deploy for a lifecycle action. */
export interface DeployTarget {
  readonly instanceId: string;
  readonly groupName: string;
  readonly group: GroupConfig;
  readonly action: LifecycleAction;
  readonly place: Place;
  readonly reason: 'launch' | 'reconcile';
  readonly overrides?: Overrides;
}

/** A launch lifecycle action: decide, then start the self-deploy on the new instance. */
export async function handleLaunch(deps: Deps, event: LifecycleEvent): Promise<LaunchOutcome> {
  const { detail } = event;
  const groupName = detail.AutoScalingGroupName;
  const keys = { instanceId: detail.EC2InstanceId, group: groupName, hook: detail.LifecycleHookName };
  const ignore = (reason: string): LaunchOutcome => {
    deps.logger.info(`ignored: ${reason}`, keys);
    return { outcome: 'ignored', reason };
  };

  if (detail.LifecycleTransition !== 'autoscaling:EC2_INSTANCE_LAUNCHING') {
    return ignore(`${detail.LifecycleTransition} is not a launch`);
  }
  const group = deps.config.groups[groupName];
  if (!group) return ignore(`group ${groupName} is not managed by selfdeploy`);
  if (detail.LifecycleHookName !== group.lifecycleHookName) {
    return ignore(`hook ${detail.LifecycleHookName} is not the selfdeploy hook ${group.lifecycleHookName}`);
  }

  const action: LifecycleAction = {
    group: groupName,
    hook: detail.LifecycleHookName,
    token: detail.LifecycleActionToken,
    instanceId: detail.EC2InstanceId,
  };
  const place: Place = detail.Destination === 'WarmPool' ? 'WarmPool' : 'AutoScalingGroup';
  if (warmPoolDecision(group.warmPool, detail.Origin, place) === 'continue') {
    const reason = `warm-pool policy ${group.warmPool}: no deploy on ${detail.Origin ?? 'EC2'} → ${place}`;
    await completeAction(deps, action, 'CONTINUE', { ...keys, reason });
    return { outcome: 'continued-without-deploy', reason };
  }

  const metadata = readMetadata(detail.NotificationMetadata);
  if (metadata.kind === 'invalid') {
    // Never let an instance into service without the deploy it was launched for.
    deps.logger.error(`abandoning: ${metadata.reason}`, keys);
    if (
      (await completeAction(deps, action, 'ABANDON', { ...keys, reason: metadata.reason })) === 'completed'
    ) {
      deps.metrics.record(MetricName.BootstrapFailed, groupName);
    }
    return { outcome: 'abandoned', reason: metadata.reason };
  }
  if (metadata.kind === 'note') deps.logger.info('launch note', { ...keys, note: metadata.text });

  const target: DeployTarget = {
    instanceId: detail.EC2InstanceId,
    groupName,
    group,
    action,
    place,
    reason: 'launch',
    ...(metadata.kind === 'overrides' && { overrides: metadata.overrides }),
  };
  const previous = await existingDeploy(deps, target);
  if (previous) {
    deps.logger.info('duplicate launch event: a deploy was already started for this lifecycle action', {
      ...keys,
      commandId: previous,
    });
    return { outcome: 'duplicate', commandId: previous };
  }

  const budget = Math.min(deps.config.agentWaitSeconds * 1000, deps.remainingMs() - SAFETY_MARGIN_MS);
  return startDeploy(deps, target, budget);
}

/**
 * Sends the SelfDeploy command. While the instance's SSM agent has not registered
 * (InvalidInstanceId) it polls the agent's status with jittered exponential backoff until
 * `waitBudgetMs` is spent, heartbeating the hook when the wait is long, and sends as soon as
 * the agent is online — unless a deploy for this instance was started meanwhile (a duplicate
 * delivery, or the reconciler). Out of budget, it stops cleanly: the reconciler tries again
 * later and the hook's timeout has the last word.
 */
export async function startDeploy(
  deps: Deps,
  target: DeployTarget,
  waitBudgetMs: number,
): Promise<StartOutcome> {
  const { clock } = deps;
  const keys = { instanceId: target.instanceId, group: target.groupName };
  const started = clock.now();
  const deadline = started + Math.max(0, waitBudgetMs);
  const heartbeatEveryMs = (target.group.heartbeatTimeoutSeconds * 1000) / 2;
  let lastHeartbeat = started;
  const waited = () => (clock.now() - started) / 1000;

  for (let attempt = 0; ; attempt++) {
    if (attempt === 0 || (await agentOnline(deps, target.instanceId))) {
      const other = attempt === 0 ? undefined : await existingDeploy(deps, target, started);
      if (other) {
        deps.logger.info('a deploy was started for this instance while waiting for its agent', {
          ...keys,
          commandId: other,
        });
        return { outcome: 'duplicate', commandId: other };
      }
      const commandId = await trySend(deps, target);
      if (commandId) {
        const agentWaitSeconds = waited();
        deps.metrics.record(MetricName.BootstrapStarted, target.groupName);
        deps.metrics.record(MetricName.AgentWait, target.groupName, agentWaitSeconds, 'Seconds');
        deps.logger.info('self-deploy started', {
          ...keys,
          commandId,
          attempts: attempt + 1,
          agentWaitSeconds,
        });
        return { outcome: 'started', commandId, agentWaitSeconds };
      }
    }
    const left = deadline - clock.now();
    if (left <= 0) {
      const agentWaitSeconds = waited();
      deps.logger.warn('SSM agent not registered yet; leaving this instance to the reconciler', {
        ...keys,
        attempts: attempt + 1,
        agentWaitSeconds,
      });
      return { outcome: 'agent-not-ready', agentWaitSeconds };
    }
    if (clock.now() - lastHeartbeat >= heartbeatEveryMs) {
      if ((await heartbeat(deps, target.action)) === 'expired') {
        deps.logger.info('lifecycle action ended while waiting for the SSM agent', keys);
        return { outcome: 'action-ended' };
      }
      lastHeartbeat = clock.now();
    }
    await clock.sleep(Math.min(backoffMs(attempt, clock.random()), left));
  }
}

/** SendCommand; undefined when the agent is not registered yet. */
async function trySend(deps: Deps, target: DeployTarget): Promise<string | undefined> {
  try {
    return await sendSelfDeploy(
      deps,
      [target.instanceId],
      deployParameters(target.group, { ...target.overrides, action: target.action }),
      commandComment(target.reason, target.place),
    );
  } catch (error) {
    if (isAgentNotReady(error)) return undefined;
    throw error;
  }
}

/** Whether the instance's SSM agent is registered and online. */
async function agentOnline(deps: Deps, instanceId: string): Promise<boolean> {
  return (await agentStatuses(deps, [instanceId])).get(instanceId) === 'Online';
}

/**
 * The instance's SelfDeploy commands, for the duplicate checks. Under a burst of launches
 * this read is the first to be throttled; when it stays throttled past the SDK's retries
 * the check is skipped rather than the launch failed, because a second deploy is harmless
 * (the script's lock and fast path) while a failed launch waits a minute for Lambda's retry.
 */
async function commandsUnlessThrottled(deps: Deps, instanceId: string): Promise<Command[]> {
  try {
    return await selfDeployCommands(deps, instanceId);
  } catch (error) {
    if (!isThrottled(error)) throw error;
    deps.logger.warn('duplicate check throttled; sending without it', { instanceId });
    return [];
  }
}

/**
 * A deploy already sent for the target's lifecycle action: one carrying its token, or, with
 * `since` (while this launch waited for the agent), one the reconciler sent for the same
 * group and place since then.
 */
async function existingDeploy(deps: Deps, target: DeployTarget, since?: number): Promise<string | undefined> {
  const commands = await commandsUnlessThrottled(deps, target.instanceId);
  const token = target.action.token;
  return commands.find(
    (command) =>
      (token !== undefined && command.Parameters?.lifecycleActionToken?.[0] === token) ||
      (since !== undefined &&
        command.Parameters?.autoScalingGroupName?.[0] === target.groupName &&
        placeOfComment(command.Comment) === target.place &&
        (command.RequestedDateTime?.getTime() ?? 0) >= since - CLOCK_SKEW_MS),
  )?.CommandId;
}
