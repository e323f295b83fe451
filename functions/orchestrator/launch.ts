import { MetricName } from '../shared/metric-names';
import { newWait } from './agent-wait';
import { managedGroup } from './config';
import { type Place, readMetadata, warmPoolDecision } from './decisions';
import type { DeployTarget } from './deploy-start';
import type { Deps } from './deps';
import type { LifecycleEvent } from './events';
import { completeAction, type LifecycleAction } from './lifecycle';
import { advanceWaits, type WaitOutcome } from './wait-queue';

export type LaunchOutcome =
  | { outcome: 'ignored'; reason: string }
  | { outcome: 'continued-without-deploy'; reason: string }
  | { outcome: 'abandoned'; reason: string }
  | WaitOutcome;

/**
 * A launch lifecycle action: decide, then look at the new instance's agent once — send the
 * self-deploy if it is online, else queue the wait. `waitStart` is when the wait began (ms):
 * the event's arrival in the queue, or now for an event invoked directly.
 */
export async function handleLaunch(
  deps: Deps,
  event: LifecycleEvent,
  waitStart = deps.clock.now(),
): Promise<LaunchOutcome> {
  const checked = await checkLaunch(deps, event);
  if ('done' in checked) return checked.done;
  const [outcome] = await advanceWaits(deps, [
    newWait(checked.target, waitStart, deps.config.agentWaitSeconds),
  ]);
  if (outcome === undefined || outcome instanceof Error) throw outcome;
  return outcome;
}

/**
 * What a launch event decides before any deploy: whether selfdeploy manages it, whether the
 * warm-pool policy lets it through without one, whether its metadata is acceptable. Either
 * the launch is done, or here is the deploy it needs.
 */
export async function checkLaunch(
  deps: Deps,
  event: LifecycleEvent,
): Promise<{ readonly done: LaunchOutcome } | { readonly target: DeployTarget }> {
  const { detail } = event;
  const groupName = detail.AutoScalingGroupName;
  const keys = { instanceId: detail.EC2InstanceId, group: groupName, hook: detail.LifecycleHookName };
  const ignore = (reason: string) => {
    deps.logger.info(`ignored: ${reason}`, keys);
    return { done: { outcome: 'ignored', reason } } as const;
  };

  if (detail.LifecycleTransition !== 'autoscaling:EC2_INSTANCE_LAUNCHING') {
    return ignore(`${detail.LifecycleTransition} is not a launch`);
  }
  const group = managedGroup(deps.config, groupName);
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
    return { done: { outcome: 'continued-without-deploy', reason } };
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
    return { done: { outcome: 'abandoned', reason: metadata.reason } };
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
  return { target };
}
