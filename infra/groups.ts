import { Annotations, aws_autoscaling as autoscaling, Duration, Stack, Token } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { SelfDeployGroup } from './props';
import {
  bootstrapBudgetSecondsOf,
  type GroupConfigInput,
  groupConfig,
  heartbeatSecondsOf,
  SelfDeployPropsError,
} from './settings';

/** A managed group as the construct uses it: resolved, with its settings and its hook's timeout. */
export interface ManagedGroup {
  /** Construct id stem of the group's own resources (and of its alarms). */
  readonly id: string;
  readonly group: autoscaling.IAutoScalingGroup;
  /** The group's name (a token for a group built in this app). */
  readonly name: string;
  readonly lifecycleHookName: string;
  readonly heartbeatSeconds: number;
  /** The group's entry in SELFDEPLOY_CONFIG. */
  readonly config: GroupConfigInput;
  /** The p90 bootstrap duration above which its bootstrap-time alarm fires. */
  readonly bootstrapBudget: Duration;
}

/** Resolves each group to an IAutoScalingGroup, its settings and its heartbeat timeout (props already checked). */
export function managedGroups(
  scope: Construct,
  groups: readonly SelfDeployGroup[],
  timings: { readonly agentWaitSeconds: number; readonly executionTimeoutSeconds: number },
): ManagedGroup[] {
  return groups.map((settings, index) => {
    const given = settings.autoScalingGroup;
    const id = typeof given === 'string' ? constructId(given, index) : given.node.id;
    const group =
      typeof given === 'string'
        ? autoscaling.AutoScalingGroup.fromAutoScalingGroupName(scope, `${id}Group`, given)
        : given;
    const heartbeatSeconds = heartbeatSecondsOf(settings, timings);
    const config = groupConfig(settings, heartbeatSeconds);
    return {
      id,
      group,
      name: group.autoScalingGroupName,
      lifecycleHookName: config.lifecycleHookName,
      heartbeatSeconds,
      config,
      bootstrapBudget: Duration.seconds(bootstrapBudgetSecondsOf(settings, timings)),
    };
  });
}

/** A launch hook on every group; a warning for each group that serves instances whose deploy failed. */
export function addLaunchHooks(scope: Construct, groups: readonly ManagedGroup[]): void {
  for (const group of groups) {
    addLaunchHook(scope, group);
    if (group.config.onFailure === 'CONTINUE') {
      Annotations.of(scope).addWarningV2(
        'selfdeploy:continueOnFailure',
        `group ${group.id} puts instances in service even when their deploy fails (onFailure CONTINUE)`,
      );
    }
  }
}

/**
 * The hook goes into the group's own definition when the group is built in the same stack,
 * so it exists before the group launches its first instances (a separate hook resource is
 * created after the group, and the first instances would skip it).
 */
function addLaunchHook(scope: Construct, group: ManagedGroup): void {
  const hook = {
    lifecycleHookName: group.lifecycleHookName,
    lifecycleTransition: 'autoscaling:EC2_INSTANCE_LAUNCHING',
    heartbeatTimeout: group.heartbeatSeconds,
    // The service default, stated because CDK's documentation claims CONTINUE.
    defaultResult: 'ABANDON',
  };
  const cfnGroup = group.group.node.defaultChild;
  if (cfnGroup instanceof autoscaling.CfnAutoScalingGroup && Stack.of(cfnGroup) === Stack.of(scope)) {
    const existing = cfnGroup.lifecycleHookSpecificationList ?? [];
    if (!Array.isArray(existing)) {
      throw new SelfDeployPropsError(
        `group ${group.id}: its lifecycle hook list is a token; selfdeploy cannot add its hook to it`,
      );
    }
    cfnGroup.lifecycleHookSpecificationList = [...existing, hook];
    return;
  }
  new autoscaling.CfnLifecycleHook(scope, `${group.id}LaunchHook`, {
    ...hook,
    autoScalingGroupName: group.name,
  });
}

/** An event older than every hook's wait refers to lifecycle actions that have already ended. */
export function eventMaxAge(groups: readonly ManagedGroup[]): Duration {
  return Duration.seconds(Math.max(60, ...groups.map((group) => group.heartbeatSeconds)));
}

function constructId(name: string, index: number): string {
  return Token.isUnresolved(name) ? `Group${index}` : name.replace(/[^A-Za-z0-9]/g, '');
}
