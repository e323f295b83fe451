import { MetricName } from '../shared/metric-names';
import { managedGroup } from './config';
import { type Place, readMetadata, warmPoolDecision } from './decisions';
import { type DeployTarget, firstDuplicateCheck, type StartOutcome, startDeploy } from './deploy-start';
import type { Deps } from './deps';
import type { LifecycleEvent } from './events';
import { completeAction, type LifecycleAction } from './lifecycle';

/** Time kept back from the invocation's remaining time to finish cleanly after the last attempt. */
const SAFETY_MARGIN_MS = 30_000;

export type LaunchOutcome =
  | { outcome: 'ignored'; reason: string }
  | { outcome: 'duplicate'; commandId: string }
  | { outcome: 'continued-without-deploy'; reason: string }
  | { outcome: 'abandoned'; reason: string }
  | StartOutcome;

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
  const check = await firstDuplicateCheck(deps, target);
  if (check.found === 'deploy') {
    deps.logger.info('duplicate launch event: a deploy was already started for this lifecycle action', {
      ...keys,
      commandId: check.commandId,
    });
    return { outcome: 'duplicate', commandId: check.commandId };
  }

  const budget = Math.min(deps.config.agentWaitSeconds * 1000, deps.remainingMs() - SAFETY_MARGIN_MS);
  return startDeploy(deps, check.target, budget);
}
