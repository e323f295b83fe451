// Standby deploys (a group's `deployWith: standby`): each batch of an operator deploy leaves
// service through Auto Scaling Standby (EnterStandby with the desired capacity decremented,
// so nothing launches in its place), deploys, and returns (ExitStandby), so no instance
// restarts while its load balancer sends it traffic. ExitStandby runs no launch lifecycle
// hook (AWS applies hooks to newly launched instances only): the deployment itself takes the
// batch back. The decisions are plain functions; the calls below them are the only I/O.
import {
  DescribeAutoScalingGroupsCommand,
  EnterStandbyCommand,
  ExitStandbyCommand,
} from '@aws-sdk/client-auto-scaling';
import type { Deps } from './deps';
import { chunk } from './utilities';

/** EnterStandby and ExitStandby take at most this many instance ids per call. */
const MAX_STANDBY_INSTANCES = 20;

/**
 * The most instances one Standby batch takes, whatever the rate control allows: the batch's
 * ids, its one command and its failures must fit the deployment record's 4 KB parameter.
 */
export const MAX_STANDBY_BATCH = 25;

/** A group's sizes as DescribeAutoScalingGroups gives them. */
export interface GroupSizes {
  readonly name: string;
  readonly min: number;
  readonly max: number;
  readonly desired: number;
}

/** A group's sizes and each instance's lifecycle state. */
export interface GroupView {
  readonly sizes: GroupSizes;
  readonly states: ReadonlyMap<string, string>;
  /** Instances Auto Scaling holds Unhealthy (EC2 status checks; the load balancer's with ELB health checks). */
  readonly unhealthy: ReadonlySet<string>;
  /**
   * For a group behind a load balancer (target groups or Classic load balancers): its health
   * check grace period, which a returned batch is given before the next batch leaves.
   */
  readonly balancedGraceMs?: number;
}

/** How many of `count` instances a rate control (`25%`, `5`) lets out at once: at least one. */
export function concurrencyLimit(maxConcurrency: string, count: number): number {
  const percent = /^([0-9]+)%$/.exec(maxConcurrency)?.[1];
  const limit = percent === undefined ? Number(maxConcurrency) : Math.floor((count * Number(percent)) / 100);
  return Math.max(1, Number.isFinite(limit) ? limit : 1);
}

const sizesOf = ({ name, min, max, desired }: GroupSizes) =>
  `group ${name} has min-size=${min}, max-size=${max}, desired=${desired}`;

/**
 * How many of `wanted` instances may enter Standby now: no more than the rate control lets out
 * at once (and MAX_STANDBY_BATCH), and never so many that the decremented desired capacity goes below MinSize (AWS
 * refuses that). At MinSize none may: the answer says why, and what would let the batch go.
 */
export function enterRoom(
  sizes: GroupSizes,
  wanted: number,
  limit: number,
): { readonly take: number } | { readonly waiting: string } {
  const room = sizes.desired - sizes.min;
  if (room < 1) {
    return {
      waiting: `${sizesOf(sizes)}: a Standby batch would take the desired capacity below MinSize; lower MinSize or raise the desired capacity to ${sizes.min + 1} or more`,
    };
  }
  return { take: Math.min(wanted, room, limit, MAX_STANDBY_BATCH) };
}

/**
 * How many of `count` instances in Standby may return now: ExitStandby raises the desired
 * capacity by their number and AWS refuses to go above MaxSize (lowered, or the group scaled
 * out meanwhile). Those that do not fit stay in Standby, named, until there is room.
 */
export function exitRoom(
  sizes: GroupSizes,
  count: number,
): { readonly take: number; readonly waiting?: string } {
  const take = Math.max(0, Math.min(count, sizes.max - sizes.desired));
  if (take === count) return { take };
  return {
    take,
    waiting: `${sizesOf(sizes)}: ${count - take} instance(s) stay in Standby until returning them keeps the desired capacity within MaxSize; raise MaxSize or lower the desired capacity (reconcile returns them then)`,
  };
}

/** The group's sizes and instances' lifecycle states (one DescribeAutoScalingGroups). */
export async function viewGroup(deps: Deps, groupName: string): Promise<GroupView> {
  const output = await deps.clients.autoScaling.send(
    new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [groupName] }),
  );
  const group = output.AutoScalingGroups?.[0];
  const balanced = (group?.TargetGroupARNs?.length ?? 0) + (group?.LoadBalancerNames?.length ?? 0) > 0;
  return {
    sizes: {
      name: groupName,
      min: group?.MinSize ?? 0,
      max: group?.MaxSize ?? 0,
      desired: group?.DesiredCapacity ?? 0,
    },
    states: new Map(
      (group?.Instances ?? []).flatMap((instance) =>
        instance.InstanceId ? [[instance.InstanceId, instance.LifecycleState ?? 'unknown'] as const] : [],
      ),
    ),
    unhealthy: new Set(
      (group?.Instances ?? []).flatMap((instance) =>
        instance.InstanceId && instance.HealthStatus?.toLowerCase() === 'unhealthy'
          ? [instance.InstanceId]
          : [],
      ),
    ),
    ...(balanced && { balancedGraceMs: (group?.HealthCheckGracePeriod ?? 0) * 1000 }),
  };
}

/** Moves InService instances to Standby, decrementing the desired capacity (≤ 20 ids per call). */
export async function enterStandby(
  deps: Deps,
  groupName: string,
  instanceIds: readonly string[],
): Promise<void> {
  for (const batch of chunk(instanceIds, MAX_STANDBY_INSTANCES)) {
    await deps.clients.autoScaling.send(
      new EnterStandbyCommand({
        AutoScalingGroupName: groupName,
        InstanceIds: batch,
        ShouldDecrementDesiredCapacity: true,
      }),
    );
  }
}

/** Returns Standby instances to service, which increments the desired capacity (≤ 20 ids per call). */
export async function exitStandby(
  deps: Deps,
  groupName: string,
  instanceIds: readonly string[],
): Promise<void> {
  for (const batch of chunk(instanceIds, MAX_STANDBY_INSTANCES)) {
    await deps.clients.autoScaling.send(
      new ExitStandbyCommand({ AutoScalingGroupName: groupName, InstanceIds: batch }),
    );
  }
}
